// End-to-end: the built board in real headless Chromium against the real stack (ticket
// API, two gateways behind nginx, Postgres, Redis) that this file starts on free ports.
// Two browser contexts are two users on one board, with their sockets on different
// gateway replicas. Each test saves a screenshot of each tab into e2e-artifacts/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { restClient, startStack } from './stack.mjs';
import {
	alertText,
	apiBoard,
	cardSelector,
	dragCard,
	gatewayOf,
	keyboardMove,
	launchBrowser,
	onDifferentGateways,
	openBoard,
	screenshot,
	waitCard,
	waitConnected,
	waitMatchesApi,
	WAIT_MS
} from './helpers.mjs';

const TEST = { timeout: 90_000 };
let stack;
let browser;
let rest;
let alice;
let bob;

before(async () => {
	stack = await startStack();
	rest = restClient(stack.url);
	alice = await rest.token('alice', 'Alice');
	bob = await rest.token('bob', 'Bob');
	browser = await launchBrowser();
});

after(async () => {
	await browser?.close();
	await stack?.stop();
});

/** A board owned by Alice with Bob as a member, and tickets created through the API. */
async function board(name, tickets) {
	const project = await rest.call('POST', '/api/projects', alice, { name });
	await rest.call('POST', `/api/projects/${project.id}/members`, alice, { userId: 'bob', role: 'member' });
	const ids = {};
	for (const [key, body] of Object.entries(tickets)) {
		ids[key] = (await rest.call('POST', `/api/projects/${project.id}/tickets`, alice, body)).id;
	}
	return { id: project.id, ids };
}

/** Alice and Bob on the board, their sockets on different gateways. */
async function twoTabs(projectId) {
	const a = await openBoard(browser, stack.url, projectId, 'alice', 'Alice');
	const b = await openBoard(browser, stack.url, projectId, 'bob', 'Bob');
	const gateways = await onDifferentGateways(a.page, b.page);
	assert.notEqual(gateways[0], gateways[1]);
	assert.match(gateways.join(), /^gw[12],gw[12]$/);
	return { a, b };
}

async function finish(name, tabs) {
	for (const [tab, { page }] of Object.entries(tabs)) await screenshot(page, `${name}-${tab}`);
	for (const { context } of Object.values(tabs)) await context.close();
}

describe('signing in and the boards list', () => {
	test('sign in, create a board, add a member and open it; a refused token goes back to sign in', TEST, async () => {
		const context = await browser.newContext({ viewport: { width: 1200, height: 700 } });
		const page = await context.newPage();
		await page.goto(`${stack.url}/`);
		await page.fill('input[name="userId"]', 'carol');
		await page.fill('input[name="name"]', 'Carol Jones');
		await page.click('button:has-text("Sign in")');
		await page.locator('h1', { hasText: 'Your boards' }).waitFor({ timeout: WAIT_MS });
		await page.fill('input[name="boardName"]', 'Carol’s board');
		await page.click('button:has-text("Create board")');
		const row = page.locator('.board-list li', { hasText: 'Carol’s board' });
		await row.waitFor({ timeout: WAIT_MS });
		await row.locator('button:has-text("Add member")').click();
		await row.locator('input[name="memberId"]').fill('dave');
		await row.locator('select[name="memberRole"]').selectOption('viewer');
		await row.locator('button:has-text("Add")').last().click();
		await row.locator('[role="status"]', { hasText: 'dave is now a viewer' }).waitFor({ timeout: WAIT_MS });
		const projectId = await row.getAttribute('data-project-id');
		const members = await rest.call('GET', `/api/projects/${projectId}/members`, await rest.token('carol'));
		assert.deepEqual(members.map((m) => `${m.userId}:${m.role}`).sort(), ['carol:owner', 'dave:viewer']);
		await screenshot(page, 'signin-boards');

		await row.locator('a').click();
		await waitConnected(page);
		await page.locator('h1', { hasText: 'Carol’s board' }).waitFor({ timeout: WAIT_MS });
		await page.locator('.avatar[data-user-id="carol"]', { hasText: 'CJ' }).waitFor({ timeout: WAIT_MS });

		// A token the server refuses (here: a forged one) sends the tab back to sign in.
		await page.evaluate(() => sessionStorage.setItem('kanban.session', 'e30.eyJzdWIiOiJjYXJvbCJ9.forged'));
		await page.reload();
		await page.locator('[role="alert"]', { hasText: 'Your session has expired' }).waitFor({ timeout: WAIT_MS });
		await page.locator('input[name="userId"]').waitFor({ timeout: WAIT_MS });

		// With development tokens off the route answers 404 (simulated here), and the
		// sign-in screen says so.
		await page.route('**/api/auth/dev-token', (route) =>
			route.fulfill({
				status: 404,
				contentType: 'application/json',
				body: JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no such route' } })
			})
		);
		await page.fill('input[name="userId"]', 'carol');
		await page.click('button:has-text("Sign in")');
		await page.locator('[role="alert"]', { hasText: 'Development sign-in is turned off' }).waitFor({ timeout: WAIT_MS });
		await screenshot(page, 'signin-disabled');
		await context.close();
	});
});

describe('the board in two browsers on two gateways', () => {
	test('a mouse drag and a keyboard move in one tab appear in the other', TEST, async () => {
		const { id, ids } = await board('Drag and keys', {
			one: { title: 'Write the spec', labels: ['docs'], priority: 'HIGH' },
			two: { title: 'Review the spec', status: 'TODO' },
			three: { title: 'Ship it', status: 'TODO' }
		});
		const { a, b } = await twoTabs(id);

		// Mouse: Alice drags "Write the spec" from Backlog to To do; while held, the board
		// shows where it may go.
		const drag = await dragCard(a.page, ids.one, 'TODO');
		assert.deepEqual(await drag.allowed(), ['BACKLOG', 'TODO']);
		// Bob sees who is moving which card (the gateway's ticket:hint)...
		const hint = b.page.locator(`${cardSelector(ids.one)} [data-hint="dragging"][data-hint-user="alice"]`);
		await hint.waitFor({ timeout: WAIT_MS });
		assert.match(await hint.innerText(), /Alice is moving this card/);
		await drag.drop();
		// ...until it is dropped.
		await hint.waitFor({ state: 'detached', timeout: WAIT_MS });
		await waitCard(a.page, ids.one, 'TODO', '[data-pending="false"]');
		await waitCard(b.page, ids.one, 'TODO');

		// Keyboard: Bob moves "Ship it" one column right (To do → In progress), alone.
		await keyboardMove(b.page, ids.three, ['ArrowRight']);
		await waitCard(b.page, ids.three, 'IN_PROGRESS');
		await waitCard(a.page, ids.three, 'IN_PROGRESS');
		const announced = await b.page.locator('[aria-live="polite"]').innerText();
		assert.match(announced, /Dropped "Ship it" in In progress/);

		// Keyboard reorder inside a column: Alice moves "Review the spec" to the top.
		await keyboardMove(a.page, ids.two, ['ArrowUp']);
		await waitMatchesApi(a.page, rest, alice, id);
		const expected = await waitMatchesApi(b.page, rest, bob, id);
		assert.equal(expected.TODO[0].split('@')[0], ids.two);

		// A forbidden drop (Backlog → Done is not in the table) is refused before sending.
		const before = await apiBoard(rest, alice, id);
		const refused = await dragCard(a.page, ids.one, 'DONE'); // ids.one is in To do now
		assert.deepEqual(await refused.allowed(), ['BACKLOG', 'TODO', 'IN_PROGRESS']);
		await refused.drop();
		assert.match(await alertText(a.page), /cannot go from To do to Done/);
		assert.deepEqual(await apiBoard(rest, alice, id), before);

		// The card's status history, in its dialog.
		await a.page.click(`${cardSelector(ids.three)} button.edit`);
		await a.page
			.locator('dialog .transitions li', { hasText: 'To do → In progress by Bob' })
			.waitFor({ timeout: WAIT_MS });
		await screenshot(a.page, 'drag-and-keyboard-alice-history');
		await a.page.keyboard.press('Escape');
		await finish('drag-and-keyboard', { alice: a, bob: b });
	});

	test('a create, an edit and a delete appear in the other tab', TEST, async () => {
		const { id, ids } = await board('Create edit delete', { old: { title: 'Old card' } });
		const { a, b } = await twoTabs(id);

		await a.page.fill('input[name="newTitle"]', 'Fresh card');
		await a.page.selectOption('select[name="newPriority"]', 'CRITICAL');
		await a.page.click('button:has-text("Add card")');
		const created = b.page.locator('[data-status="BACKLOG"] [data-ticket-id]', { hasText: 'Fresh card' });
		await created.waitFor({ timeout: WAIT_MS });
		const newId = await created.getAttribute('data-ticket-id');
		assert.doesNotMatch(newId, /^tmp-/);
		await waitCard(a.page, newId, 'BACKLOG', '[data-pending="false"]');
		assert.equal(await a.page.locator('[data-ticket-id]', { hasText: 'Fresh card' }).count(), 1);

		// Bob edits it: title, priority and labels; Alice sees the change.
		await b.page.click(`${cardSelector(newId)} button.edit`);
		await a.page
			.locator(`${cardSelector(newId)} [data-hint="editing"][data-hint-user="bob"]`, { hasText: 'Bob is editing' })
			.waitFor({ timeout: WAIT_MS });
		await b.page.fill('dialog input[name="title"]', 'Fresh card, edited');
		await b.page.fill('dialog input[name="labels"]', 'ui, urgent');
		await b.page.click('dialog button:has-text("Save")');
		await a.page
			.locator(cardSelector(newId), { hasText: 'Fresh card, edited' })
			.filter({ hasText: 'urgent' })
			.waitFor({ timeout: WAIT_MS });

		// Alice deletes the old card; it disappears for Bob.
		await a.page.click(`${cardSelector(ids.old)} button.edit`);
		await a.page.click('dialog button:has-text("Delete card")');
		await b.page.locator(cardSelector(ids.old)).waitFor({ state: 'detached', timeout: WAIT_MS });
		await waitMatchesApi(a.page, rest, alice, id);
		await waitMatchesApi(b.page, rest, bob, id);
		await finish('create-edit-delete', { alice: a, bob: b });
	});

	test('a conflicting move rolls back in exactly one tab, which says so; both end as the API', TEST, async () => {
		const { id, ids } = await board('Conflict', { card: { title: 'Contested', status: 'TODO' } });
		const { a, b } = await twoTabs(id);
		// Both move the card from the same version: Bob's tab is cut off while he moves it,
		// so his command goes out only after Alice's is committed. (He has seen her on the
		// board, so his tab knows her name.)
		await b.page.locator('.avatar[data-user-id="alice"]').waitFor({ timeout: WAIT_MS });
		await b.context.setOffline(true);
		await b.page.locator('[data-connection="offline"]').waitFor({ timeout: WAIT_MS });
		await keyboardMove(b.page, ids.card, ['ArrowLeft']); // To do → Backlog
		await waitCard(b.page, ids.card, 'BACKLOG', '[data-pending="true"]');
		await keyboardMove(a.page, ids.card, ['ArrowRight']); // To do → In progress
		await waitCard(a.page, ids.card, 'IN_PROGRESS', '[data-pending="false"]');
		await b.context.setOffline(false);
		await waitConnected(b.page);

		await waitCard(b.page, ids.card, 'IN_PROGRESS', '[data-pending="false"]');
		await b.page.locator('.alert', { hasText: 'was undone' }).waitFor({ timeout: WAIT_MS });
		assert.match(await alertText(b.page), /Your move of "Contested" was undone: Alice moved it to In progress first/);
		assert.equal(await alertText(a.page), '');
		const expected = await waitMatchesApi(a.page, rest, alice, id);
		assert.deepEqual(await waitMatchesApi(b.page, rest, bob, id), expected);
		assert.equal(expected.IN_PROGRESS.length, 1);
		await finish('conflict', { alice: a, bob: b });
	});

	test('offline: a move made without network is sent once when it is back, and both converge', TEST, async () => {
		const { id, ids } = await board('Offline', { card: { title: 'Travel light' } });
		const { a, b } = await twoTabs(id);
		const { seq } = await rest.call('GET', `/api/projects/${id}/me`, alice);

		await b.context.setOffline(true);
		await b.page.locator('[data-connection="offline"]').waitFor({ timeout: WAIT_MS });
		await keyboardMove(b.page, ids.card, ['ArrowRight']); // Backlog → To do
		await waitCard(b.page, ids.card, 'TODO', '[data-pending="true"]');
		await screenshot(b.page, 'offline-bob-while-offline');
		await b.context.setOffline(false);
		await waitConnected(b.page);
		await waitCard(b.page, ids.card, 'TODO', '[data-pending="false"]');
		await waitCard(a.page, ids.card, 'TODO');

		const log = await rest.call('GET', `/api/projects/${id}/events?since=${seq}`, alice);
		const moves = log.events.filter((e) => e.event === 'ticket:moved' && e.data.ticketId === ids.card);
		assert.equal(moves.length, 1, 'the move was committed exactly once');
		const expected = await waitMatchesApi(a.page, rest, alice, id);
		assert.deepEqual(await waitMatchesApi(b.page, rest, bob, id), expected);
		await finish('offline', { alice: a, bob: b });
	});

	test('presence: the other user appears in the avatars and disappears when the tab closes', TEST, async () => {
		const { id } = await board('Presence', {});
		const a = await openBoard(browser, stack.url, id, 'alice', 'Alice');
		await a.page.locator('[data-presence-count="1"]').waitFor({ timeout: WAIT_MS });
		const b = await openBoard(browser, stack.url, id, 'bob', 'Bob');
		await a.page.locator('[data-presence-count="2"]').waitFor({ timeout: WAIT_MS });
		await a.page.locator('.avatar[data-user-id="bob"]').waitFor({ timeout: WAIT_MS });
		// A second tab of Bob's counts once.
		const b2 = await openBoard(browser, stack.url, id, 'bob', 'Bob');
		await b2.page.locator('[data-presence-count="2"]').waitFor({ timeout: WAIT_MS });
		assert.equal(await a.page.locator('.avatar').count(), 2);
		await screenshot(b.page, 'presence-bob');
		await b2.context.close();
		await b.context.close();
		await a.page.locator('[data-presence-count="1"]').waitFor({ timeout: WAIT_MS });
		await a.page.locator('.avatar[data-user-id="bob"]').waitFor({ state: 'detached', timeout: WAIT_MS });
		await finish('presence', { alice: a });
	});

	test('kill -9 of one tab’s gateway: it shows reconnecting, lands on the survivor and catches up without a reload', TEST, async () => {
		const { id, ids } = await board('Gateway dies', {
			one: { title: 'Card one' },
			two: { title: 'Card two' },
			three: { title: 'Card three', status: 'TODO' }
		});
		const { a, b } = await twoTabs(id);
		const victim = await gatewayOf(b.page);
		await b.page.evaluate(() => {
			window.__sameDocument = true;
		});
		stack.kill(victim);
		await b.page.locator('[data-connection="reconnecting"]').waitFor({ timeout: WAIT_MS });
		await screenshot(b.page, 'gateway-dies-bob-reconnecting');
		// Alice keeps moving cards meanwhile.
		await keyboardMove(a.page, ids.one, ['ArrowRight']);
		await waitCard(a.page, ids.one, 'TODO', '[data-pending="false"]');
		await keyboardMove(a.page, ids.three, ['ArrowRight']);
		await waitCard(a.page, ids.three, 'IN_PROGRESS', '[data-pending="false"]');

		await waitConnected(b.page);
		assert.notEqual(await gatewayOf(b.page), victim);
		assert.equal(await b.page.evaluate(() => window.__sameDocument), true, 'no page reload');
		const expected = await waitMatchesApi(b.page, rest, bob, id);
		assert.deepEqual(await waitMatchesApi(a.page, rest, alice, id), expected);
		await finish('gateway-dies', { alice: a, bob: b });
		await stack.restart(victim);
	});
});
