import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { STATUSES, TRANSITIONS } from '$lib/status';

const rust = readFileSync(
	fileURLToPath(new URL('../../../../shared/protocol/src/status.rs', import.meta.url)),
	'utf8'
);
const screaming = (camel: string) => camel.replace(/(?<!^)([A-Z])/g, '_$1').toUpperCase();

describe('the client restates the protocol crate exactly', () => {
	it('TRANSITIONS equals shared/protocol/src/status.rs, pair for pair and in order', () => {
		const block = rust.match(/pub const TRANSITIONS[\s\S]*?use TicketStatus::\*;\s*&\[([\s\S]*?)\]/);
		expect(block, 'TRANSITIONS not found in status.rs').not.toBeNull();
		const pairs = [...block![1].matchAll(/\((\w+),\s*(\w+)\)/g)].map((m) => [screaming(m[1]), screaming(m[2])]);
		expect(pairs.length).toBeGreaterThan(0);
		expect(TRANSITIONS.map((p) => [...p])).toEqual(pairs);
	});

	it('the columns are the TicketStatus variants in declaration order', () => {
		const block = rust.match(/TicketStatus, "status", \{([\s\S]*?)\}/);
		const names = [...block![1].matchAll(/=> "([A-Z_]+)"/g)].map((m) => m[1]);
		expect([...STATUSES]).toEqual(names);
	});
});
