// Browser helpers for the end-to-end tests: Debian's chromium driven by playwright-core,
// and the board's stable hooks (data-status, data-ticket-id, data-version, data-pending,
// data-connection, data-presence-count, role="alert"). Every wait has a deadline; none
// is a fixed sleep.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { WEB_DIR } from './stack.mjs';

export const WAIT_MS = 15_000;
export const ARTIFACTS = join(WEB_DIR, 'e2e-artifacts');

export async function launchBrowser() {
	return chromium.launch({
		executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
		args: [
			'--headless',
			'--no-sandbox',
			'--disable-gpu',
			'--disable-quic',
			'--no-first-run',
			'--disable-background-networking',
			'--disable-component-update',
			'--disable-sync'
		]
	});
}

/** A new context (its own sessionStorage: its own user) with the board open and live. */
export async function openBoard(browser, baseUrl, projectId, userId, name) {
	const context = await browser.newContext({ viewport: { width: 1400, height: 800 } });
	const page = await context.newPage();
	page.on('pageerror', (err) => console.error(`[${userId}] page error: ${err.message}`));
	await page.goto(
		`${baseUrl}/board/?id=${projectId}&user=${encodeURIComponent(userId)}&name=${encodeURIComponent(name)}`
	);
	await waitConnected(page);
	return { context, page };
}

export async function waitConnected(page) {
	await page.locator('[data-connection="connected"]').waitFor({ timeout: WAIT_MS });
	await page.locator('[data-loaded="true"]').waitFor({ timeout: WAIT_MS });
}

/** The gateway replica a tab's socket is on, from its Engine.IO sid prefix (`gw1~…`). */
export async function gatewayOf(page) {
	const sid = await page.locator('[data-connection="connected"]').getAttribute('data-session-id');
	return sid?.split('~')[0] ?? '';
}

/**
 * Reloads `other` until its socket is on a different gateway than `page`'s (nginx
 * spreads new sessions round-robin). Bounded: a handful of reloads.
 */
export async function onDifferentGateways(page, other) {
	const first = await gatewayOf(page);
	for (let i = 0; i < 8; i++) {
		if ((await gatewayOf(other)) !== first) return [first, await gatewayOf(other)];
		await other.reload();
		await waitConnected(other);
	}
	throw new Error(`both tabs stayed on ${first}`);
}

/** The board as a tab shows it: per column, the cards' ids and versions in order. */
export async function shownBoard(page) {
	return page.evaluate(() => {
		const out = {};
		for (const column of document.querySelectorAll('[data-status]')) {
			out[column.dataset.status] = [...column.querySelectorAll('[data-ticket-id]')].map(
				(c) => `${c.dataset.ticketId}@${c.dataset.version}${c.dataset.pending === 'true' ? '*' : ''}`
			);
		}
		return out;
	});
}

/** The board as the API has it, in the same shape. */
export async function apiBoard(rest, token, projectId) {
	const snapshot = await rest.call('GET', `/api/projects/${projectId}`, token);
	const out = {
		BACKLOG: [],
		TODO: [],
		IN_PROGRESS: [],
		NEEDS_FEEDBACK: [],
		READY_TO_RESUME: [],
		DONE: []
	};
	for (const t of snapshot.tickets) out[t.status].push(`${t.id}@${t.version}`);
	return out;
}

/** Waits until the tab shows exactly the API's board (no pending marks left). */
export async function waitMatchesApi(page, rest, token, projectId) {
	const deadline = Date.now() + WAIT_MS;
	let expected;
	let shown;
	while (Date.now() < deadline) {
		expected = await apiBoard(rest, token, projectId);
		try {
			await page.waitForFunction(
				(want) => {
					for (const [status, cards] of Object.entries(want)) {
						const column = document.querySelector(`[data-status="${status}"]`);
						if (!column) return false;
						const got = [...column.querySelectorAll('[data-ticket-id]')].map(
							(c) => `${c.dataset.ticketId}@${c.dataset.version}${c.dataset.pending === 'true' ? '*' : ''}`
						);
						if (got.join() !== cards.join()) return false;
					}
					return true;
				},
				expected,
				{ timeout: 2000 }
			);
			return expected;
		} catch {
			shown = await shownBoard(page);
		}
	}
	throw new Error(
		`the tab never matched the API\nAPI:  ${JSON.stringify(expected)}\ntab:  ${JSON.stringify(shown)}`
	);
}

export function cardSelector(id, status) {
	return status ? `[data-status="${status}"] [data-ticket-id="${id}"]` : `[data-ticket-id="${id}"]`;
}

export async function waitCard(page, id, status, extra = '') {
	await page.locator(`${cardSelector(id, status)}${extra}`).waitFor({ timeout: WAIT_MS });
}

/** Drags a card with the mouse onto a column (below its last card, or above card `beforeId`). */
export async function dragCard(page, id, toStatus, beforeId) {
	const source = page.locator(`${cardSelector(id)} [role=button]`);
	const from = await source.boundingBox();
	if (!from) throw new Error(`card ${id} is not visible`);
	let to;
	if (beforeId) {
		const box = await page.locator(cardSelector(beforeId, toStatus)).boundingBox();
		to = { x: box.x + box.width / 2, y: box.y + 4 };
	} else {
		const box = await page.locator(`[data-status="${toStatus}"]`).boundingBox();
		to = { x: box.x + box.width / 2, y: box.y + box.height - 12 };
	}
	const sx = from.x + from.width / 2;
	const sy = from.y + from.height / 2;
	await page.mouse.move(sx, sy);
	await page.mouse.down();
	await page.mouse.move(sx + 8, sy + 8, { steps: 2 });
	await page.mouse.move(to.x, to.y, { steps: 8 });
	return {
		/** Which columns the board marks as allowed while the card is held. */
		allowed: () =>
			page.evaluate(() =>
				[...document.querySelectorAll('[data-drop="allowed"]')].map((c) => c.dataset.status)
			),
		drop: () => page.mouse.up()
	};
}

/** Moves a card with the keyboard alone: focus, Space, the given keys, Space. */
export async function keyboardMove(page, id, keys) {
	await page.locator(`${cardSelector(id)} [role=button]`).focus();
	await page.keyboard.press('Space');
	for (const key of keys) await page.keyboard.press(key);
	await page.keyboard.press('Space');
}

export async function alertText(page) {
	return (await page.locator('.alerts[role="alert"]').innerText()).trim();
}

export async function screenshot(page, name) {
	mkdirSync(ARTIFACTS, { recursive: true });
	await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}
