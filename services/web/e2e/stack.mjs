// Starts the real stack for the end-to-end tests and the benchmark, on free loopback
// ports: the built ticket-api, two gateways (gw1, gw2) and nginx rendered from
// deploy/local/nginx.conf.template serving the built board (services/web/dist). Each run
// gets its own Postgres database and Redis key prefix, and stops what it started by pid.
//
// Environment: CARGO_TARGET_DIR (binaries in $CARGO_TARGET_DIR/debug, default
// ~/.cache/kanban-target), KANBAN_PG_PORT (5432), KANBAN_REDIS_PORT (6379).
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const WEB_DIR = resolve(HERE, '..');
const ROOT = resolve(WEB_DIR, '../..');
const TARGET = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/kanban-target');
const PG_PORT = process.env.KANBAN_PG_PORT || '5432';
const REDIS_PORT = process.env.KANBAN_REDIS_PORT || '6379';

async function freePort() {
	return new Promise((resolvePort, reject) => {
		const server = createServer();
		server.unref();
		server.on('error', reject);
		server.listen(0, '127.0.0.1', () => {
			const { port } = server.address();
			server.close(() => resolvePort(port));
		});
	});
}

async function waitFor(url, child, name, deadlineMs = 30_000) {
	const end = Date.now() + deadlineMs;
	while (Date.now() < end) {
		if (child && child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
		try {
			const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
			if (response.ok) return;
		} catch {
			// not up yet
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(`${name} did not answer ${url} within ${deadlineMs} ms`);
}

function psql(sql) {
	execFileSync('psql', ['-h', '127.0.0.1', '-p', PG_PORT, '-U', 'postgres', '-qAt', '-c', sql], {
		stdio: ['ignore', 'ignore', 'pipe']
	});
}

/**
 * Starts the stack. Options: `gatewayEnv` (extra environment for both gateways), `web`
 * (false: no nginx and no built board, for the unit tests of the socket and API code;
 * `url` is then null).
 * Returns { url, api, gateways: {gw1, gw2}, kill(name), restart(name), stop() }.
 */
export async function startStack(options = {}) {
	const bin = (name) => join(TARGET, 'debug', name);
	for (const name of ['ticket-api', 'gateway']) {
		if (!existsSync(bin(name))) throw new Error(`${bin(name)} is missing: cargo build -p ticket-api -p gateway`);
	}
	const web = options.web ?? true;
	const dist = join(WEB_DIR, 'dist');
	if (web && !existsSync(join(dist, 'index.html'))) throw new Error('services/web/dist is missing: npm run build');

	const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
	const database = `kanban_web_${run}`;
	const prefix = `kanban-web-${run}`;
	const secret = randomBytes(36).toString('base64url');
	const state = mkdtempSync(join(tmpdir(), 'kanban-web-'));
	mkdirSync(join(state, 'nginx-tmp'), { recursive: true });
	psql(`create database ${database}`);

	const [apiPort, gw1Port, gw2Port, port] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
	const children = new Map();
	const common = {
		...process.env,
		KANBAN_AUTH__JWT_SECRET: secret,
		KANBAN_REDIS__URL: `redis://127.0.0.1:${REDIS_PORT}`,
		KANBAN_REDIS__KEY_PREFIX: prefix,
		KANBAN_LOG__FILTER: 'warn'
	};

	const launch = (name, command, args, env) => {
		const log = openSync(join(state, `${name}.log`), 'a');
		const child = spawn(command, args, { env, stdio: ['ignore', log, log] });
		children.set(name, child);
		return child;
	};

	const apiUrl = `http://127.0.0.1:${apiPort}`;
	const api = launch('ticket-api', bin('ticket-api'), [], {
		...common,
		KANBAN_HTTP__PORT: String(apiPort),
		KANBAN_HTTP__WORKERS: '2',
		KANBAN_DATABASE__URL: `postgres://postgres@127.0.0.1:${PG_PORT}/${database}`,
		KANBAN_DATABASE__POOL_SIZE: '8',
		KANBAN_AUTH__DEV_TOKENS: 'true'
	});

	const gatewayPorts = { gw1: gw1Port, gw2: gw2Port };
	const startGateway = async (name) => {
		const child = launch(name, bin('gateway'), [], {
			...common,
			KANBAN_HTTP__PORT: String(gatewayPorts[name]),
			KANBAN_HTTP__WORKERS: '2',
			KANBAN_API__BASE_URL: apiUrl,
			KANBAN_GATEWAY__INSTANCE_ID: name,
			KANBAN_GATEWAY__DRAIN_WINDOW_MS: '500',
			...(options.gatewayEnv ?? {})
		});
		await waitFor(`http://127.0.0.1:${gatewayPorts[name]}/readyz`, child, name);
	};

	const stop = async () => {
		for (const [, child] of children) {
			if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
		}
		await Promise.all(
			[...children.values()].map(
				(child) =>
					new Promise((r) => {
						if (child.exitCode !== null || child.signalCode !== null) return r();
						const t = setTimeout(() => {
							child.kill('SIGKILL');
							r();
						}, 5000);
						child.once('exit', () => {
							clearTimeout(t);
							r();
						});
					})
			)
		);
		try {
			psql(`drop database if exists ${database} with (force)`);
		} catch {
			// best effort
		}
		if (!process.env.KANBAN_E2E_KEEP_LOGS) rmSync(state, { recursive: true, force: true });
	};

	const handle = () => ({
		url: web ? `http://127.0.0.1:${port}` : null,
		api: apiUrl,
		logs: state,
		gateways: { gw1: `http://127.0.0.1:${gw1Port}`, gw2: `http://127.0.0.1:${gw2Port}` },
		/** kill -9 one gateway. */
		kill(name) {
			children.get(name)?.kill('SIGKILL');
		},
		async restart(name) {
			const old = children.get(name);
			if (old && old.exitCode === null && old.signalCode === null) old.kill('SIGKILL');
			await startGateway(name);
		},
		stop
	});

	try {
		await waitFor(`${apiUrl}/readyz`, api, 'ticket-api');
		await Promise.all([startGateway('gw1'), startGateway('gw2')]);
		if (!web) return handle();
		const config = readFileSync(join(ROOT, 'deploy/local/nginx.conf.template'), 'utf8')
			.replaceAll('@STATE@', state)
			.replaceAll('@API_PORT@', String(apiPort))
			.replaceAll('@GW1_PORT@', String(gw1Port))
			.replaceAll('@GW2_PORT@', String(gw2Port))
			.replaceAll('@PORT@', String(port))
			.replaceAll('@WEB_ROOT@', dist);
		writeFileSync(join(state, 'nginx.conf'), config);
		// Started by root, nginx's workers run as `nobody`, who cannot read a checkout inside
		// a private folder (a home directory, a mktemp -d folder): run them as root then.
		const asUser = process.getuid?.() === 0 ? ['-g', 'user root;'] : [];
		const nginx = launch('nginx', 'nginx', ['-c', join(state, 'nginx.conf'), '-p', state, ...asUser], process.env);
		await waitFor(`http://127.0.0.1:${port}/api/openapi.json`, nginx, 'nginx');
	} catch (err) {
		process.env.KANBAN_E2E_KEEP_LOGS = '1';
		console.error(`stack logs kept in ${state}`);
		await stop();
		throw err;
	}

	return handle();
}

/** A small REST client for test set-up, through the stack's nginx. */
export function restClient(base) {
	const call = async (method, path, token, body) => {
		const headers = {};
		if (token) headers.authorization = `Bearer ${token}`;
		if (body !== undefined) headers['content-type'] = 'application/json';
		const response = await fetch(`${base}${path}`, {
			method,
			headers,
			body: body === undefined ? undefined : JSON.stringify(body),
			signal: AbortSignal.timeout(10_000)
		});
		const text = await response.text();
		if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
		return text ? JSON.parse(text) : null;
	};
	return {
		call,
		async token(userId, name) {
			return (await call('POST', '/api/auth/dev-token', undefined, { userId, name })).token;
		}
	};
}
