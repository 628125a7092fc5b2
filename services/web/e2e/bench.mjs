// Benchmark (not a test): the web board through nginx and two gateways, in headless
// Chromium, against a stack started here (e2e/stack.mjs). Measures
//   1. drop in tab A → the card in tab B's DOM, over MOVES mouse drags (p50, p99);
//   2. a board of CARDS tickets: snapshot arrival → rendered (DOM updated), in the page;
//   3. applying a remote move on that board: event received → DOM updated, in the page.
// and the host's foreign CPU during the run (/proc/stat minus this process tree).
// Usage: node e2e/bench.mjs [--moves 200] [--cards 1000]   (after npm run build and
// cargo build -p ticket-api -p gateway). Results are printed as JSON.
import { readFileSync, readdirSync } from 'node:fs';
import { restClient, startStack } from './stack.mjs';
import { launchBrowser, onDifferentGateways, openBoard, cardSelector, WAIT_MS } from './helpers.mjs';

const arg = (name, fallback) => {
	const i = process.argv.indexOf(`--${name}`);
	return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const MOVES = arg('moves', 200);
const CARDS = arg('cards', 1000);
const REMOTE_MOVES = arg('remote-moves', 100);

// ---- CPU accounting -------------------------------------------------------------------
function hostJiffies() {
	const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
	const n = fields.map(Number);
	const idle = n[3] + (n[4] ?? 0);
	const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
	return { busy: total - idle, total };
}
function processTable() {
	const table = new Map();
	for (const entry of readdirSync('/proc')) {
		if (!/^\d+$/.test(entry)) continue;
		try {
			const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
			const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
			table.set(Number(entry), { ppid: Number(rest[1]), cpu: Number(rest[11]) + Number(rest[12]) });
		} catch {
			// gone
		}
	}
	return table;
}
/** CPU jiffies of this process and its descendants, tracked across samples. */
class TreeCpu {
	first = new Map();
	last = new Map();
	sample() {
		const table = processTable();
		const mine = new Set([process.pid]);
		let grew = true;
		while (grew) {
			grew = false;
			for (const [pid, { ppid }] of table) {
				if (!mine.has(pid) && mine.has(ppid)) {
					mine.add(pid);
					grew = true;
				}
			}
		}
		for (const pid of mine) {
			const cpu = table.get(pid)?.cpu ?? 0;
			if (!this.first.has(pid)) this.first.set(pid, this.started ? 0 : cpu);
			this.last.set(pid, cpu);
		}
		this.started = true;
	}
	total() {
		let sum = 0;
		for (const [pid, last] of this.last) sum += last - (this.first.get(pid) ?? 0);
		return sum;
	}
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const stats = (values) => {
	const sorted = [...values].sort((a, b) => a - b);
	return {
		n: sorted.length,
		p50: +pct(sorted, 50).toFixed(2),
		p99: +pct(sorted, 99).toFixed(2),
		max: +sorted[sorted.length - 1].toFixed(2)
	};
};

// ---- the run ----------------------------------------------------------------------------
const tree = new TreeCpu();
tree.sample();
const host0 = hostJiffies();
const sampler = setInterval(() => tree.sample(), 500);
const started = Date.now();

// The benchmark moves faster than a person: the gateways' per-socket command rate limit
// (20/s sustained, 40 burst) is raised so that it measures latency, not the limiter.
const stack = await startStack({
	gatewayEnv: { KANBAN_LIMITS__EVENTS_PER_SECOND: '500', KANBAN_LIMITS__EVENT_BURST: '1000' }
});
const browser = await launchBrowser();
const result = { moves: MOVES, cards: CARDS };
try {
	const rest = restClient(stack.url);
	const alice = await rest.token('alice', 'Alice');
	const newBoard = async (name) => {
		const project = await rest.call('POST', '/api/projects', alice, { name });
		await rest.call('POST', `/api/projects/${project.id}/members`, alice, { userId: 'bob', role: 'member' });
		return project.id;
	};

	// 1. Drop in A → card in B.
	{
		const id = await newBoard('Latency');
		const cards = [];
		for (let i = 0; i < 5; i++) {
			cards.push((await rest.call('POST', `/api/projects/${id}/tickets`, alice, { title: `Card ${i}` })).id);
		}
		const a = await openBoard(browser, stack.url, id, 'alice', 'Alice');
		const b = await openBoard(browser, stack.url, id, 'bob', 'Bob');
		result.gateways = await onDifferentGateways(a.page, b.page);
		await a.page.evaluate(() => {
			window.addEventListener('pointerup', () => (window.__drop = performance.timeOrigin + performance.now()), true);
		});
		const latencies = [];
		for (let i = 0; i < MOVES; i++) {
			const card = cards[i % cards.length];
			const to = Math.floor(i / cards.length) % 2 === 0 ? 'TODO' : 'BACKLOG';
			const seen = b.page.evaluate(
				({ card, to }) =>
					new Promise((resolve) => {
						const sel = `[data-status="${to}"] [data-ticket-id="${card}"]`;
						const done = () => resolve(performance.timeOrigin + performance.now());
						if (document.querySelector(sel)) return done();
						const observer = new MutationObserver(() => {
							if (document.querySelector(sel)) {
								observer.disconnect();
								done();
							}
						});
						observer.observe(document.body, { childList: true, subtree: true });
					}),
				{ card, to }
			);
			const source = await a.page.locator(`${cardSelector(card)} [role=button]`).boundingBox();
			const target = await a.page.locator(`[data-status="${to}"]`).boundingBox();
			await a.page.mouse.move(source.x + source.width / 2, source.y + source.height / 2);
			await a.page.mouse.down();
			await a.page.mouse.move(source.x + source.width / 2 + 8, source.y + source.height / 2 + 8);
			await a.page.mouse.move(target.x + target.width / 2, target.y + target.height - 10, { steps: 4 });
			await a.page.mouse.up();
			const appeared = await seen;
			const dropped = await a.page.evaluate(() => window.__drop);
			latencies.push(appeared - dropped);
			await a.page.locator(`${cardSelector(card, to)}[data-pending="false"]`).waitFor({ timeout: WAIT_MS });
		}
		result.dropToOtherTabMs = stats(latencies);
		await a.context.close();
		await b.context.close();
	}

	// 2. and 3. A board of CARDS tickets.
	{
		const id = await newBoard('Big board');
		const statuses = ['BACKLOG', 'TODO', 'IN_PROGRESS', 'NEEDS_FEEDBACK', 'READY_TO_RESUME', 'DONE'];
		const ids = [];
		const queue = [...Array(CARDS).keys()];
		await Promise.all(
			Array.from({ length: 8 }, async () => {
				while (queue.length) {
					const i = queue.shift();
					const t = await rest.call('POST', `/api/projects/${id}/tickets`, alice, {
						title: `Card ${i}`,
						status: statuses[i % statuses.length],
						labels: i % 3 ? [] : ['label']
					});
					ids.push(t);
				}
			})
		);
		const renders = [];
		for (let run = 0; run < 3; run++) {
			const context = await browser.newContext({ viewport: { width: 1400, height: 800 } });
			await context.addInitScript(() => {
				window.__kanbanMeasure = [];
			});
			const page = await context.newPage();
			await page.goto(`${stack.url}/board/?id=${id}&user=bob&name=Bob`);
			await page.locator('[data-connection="connected"]').waitFor({ timeout: 60_000 });
			await page.locator('[data-loaded="true"]').waitFor({ timeout: 60_000 });
			const ms = await page.evaluate(() => {
				const s = performance.getEntriesByName('kanban:snapshot').at(-1);
				const r = performance.getEntriesByName('kanban:snapshot-rendered').at(-1);
				return r.startTime - s.startTime;
			});
			renders.push(ms);
			const count = await page.locator('[data-ticket-id]').count();
			if (count !== CARDS) throw new Error(`rendered ${count} of ${CARDS} cards`);
			if (run < 2) {
				await context.close();
				continue;
			}
			// Remote moves on the big board, from the API (another user).
			const movable = ids.filter((t) => t.status === 'BACKLOG').slice(0, REMOTE_MOVES);
			for (const t of movable) {
				await rest.call('POST', `/api/tickets/${t.id}/move`, alice, { toStatus: 'TODO', position: 0 });
				await page.locator(cardSelector(t.id, 'TODO')).waitFor({ timeout: WAIT_MS });
			}
			const applied = await page.evaluate(() => window.__kanbanMeasure.filter((m) => m.event === 'ticket:moved').map((m) => m.ms));
			result.remoteMoveApplyMs = stats(applied);
			await context.close();
		}
		result.renderMs = { runs: renders.map((r) => +r.toFixed(1)), ...stats(renders) };
	}
} finally {
	await browser.close();
	await stack.stop();
	clearInterval(sampler);
	tree.sample();
}
const host1 = hostJiffies();
const seconds = (Date.now() - started) / 1000;
const capacity = host1.total - host0.total; // all cores
const foreign = host1.busy - host0.busy - tree.total();
result.seconds = +seconds.toFixed(1);
result.hostBusyPct = +((100 * (host1.busy - host0.busy)) / capacity).toFixed(1);
result.foreignCpuPct = +((100 * Math.max(0, foreign)) / capacity).toFixed(1);
console.log(JSON.stringify(result, null, 2));
