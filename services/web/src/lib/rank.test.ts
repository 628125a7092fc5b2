import { describe, expect, it } from 'vitest';
import { compareRankId, rankBetween } from '$lib/rank';
import { allowedTargets, canMove } from '$lib/status';

describe('rankBetween', () => {
	it('gives V for an empty column, like the server', () => {
		expect(rankBetween(null, null)).toBe('V');
	});

	it('is strictly between its bounds and never ends in 0, for many random pairs', () => {
		const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
		let seed = 42;
		const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
		const key = () => {
			let k = '';
			const n = 1 + Math.floor(rnd() * 5);
			for (let i = 0; i < n; i++) k += digits[Math.floor(rnd() * 62)];
			return k.replace(/0+$/, '') || 'V';
		};
		for (let i = 0; i < 2000; i++) {
			let [a, b] = [key(), key()];
			if (a === b) continue;
			if (a > b) [a, b] = [b, a];
			const m = rankBetween(a, b);
			expect(m > a && m < b, `${a} < ${m} < ${b}`).toBe(true);
			expect(m.endsWith('0')).toBe(false);
			expect(rankBetween(a, null) > a).toBe(true);
			expect(rankBetween(null, b) < b).toBe(true);
		}
	});

	it('keeps finding room when the same gap is split again and again', () => {
		let lower = 'V';
		const upper = 'W';
		for (let i = 0; i < 100; i++) {
			const next = rankBetween(lower, upper);
			expect(next > lower && next < upper).toBe(true);
			lower = next;
		}
	});

	it('orders by rank in byte order, then by id', () => {
		expect(compareRankId('Z', 'x', 'a', 'a')).toBeLessThan(0);
		expect(compareRankId('V', 'a', 'V', 'b')).toBeLessThan(0);
	});
});

describe('the transition table', () => {
	it('allows exactly the documented moves (docs/state-machine.md)', () => {
		expect(allowedTargets('BACKLOG')).toEqual(['BACKLOG', 'TODO']);
		expect(allowedTargets('TODO')).toEqual(['BACKLOG', 'TODO', 'IN_PROGRESS']);
		expect(allowedTargets('IN_PROGRESS')).toEqual(['BACKLOG', 'IN_PROGRESS', 'NEEDS_FEEDBACK', 'DONE']);
		expect(allowedTargets('NEEDS_FEEDBACK')).toEqual(['BACKLOG', 'NEEDS_FEEDBACK', 'READY_TO_RESUME']);
		expect(allowedTargets('READY_TO_RESUME')).toEqual(['BACKLOG', 'IN_PROGRESS', 'READY_TO_RESUME']);
		expect(allowedTargets('DONE')).toEqual(['TODO', 'DONE']);
		expect(canMove('DONE', 'BACKLOG')).toBe(false);
	});
});
