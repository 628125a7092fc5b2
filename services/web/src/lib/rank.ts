// Column order on the client: the server's rank keys (base-62 fractions, byte order, ties
// by id; docs/api.md "Ranks and column order") and a key between two neighbours for the
// optimistic placement of a move, which the server's own key replaces on the ack or echo.

const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BASE = DIGITS.length;

function digit(key: string, i: number): number {
	const d = DIGITS.indexOf(key[i]);
	if (d < 0) throw new Error(`not a rank key: ${key}`);
	return d;
}

/** Orders two (rank, id) pairs the way the server does: rank by code unit, then id. */
export function compareRankId(aRank: string, aId: string, bRank: string, bId: string): number {
	if (aRank !== bRank) return aRank < bRank ? -1 : 1;
	if (aId !== bId) return aId < bId ? -1 : 1;
	return 0;
}

/**
 * A key strictly between `lower` and `upper` (`null`: the ends of the column). Keys are
 * read as fractions `0.<digits>`; the result never ends in `0`, like the server's.
 */
export function rankBetween(lower: string | null, upper: string | null): string {
	const a = lower ?? '';
	let b = upper;
	if (b !== null && a >= b) throw new Error(`rank bounds out of order: ${a} >= ${b}`);
	let out = '';
	for (let i = 0; ; i++) {
		const da = i < a.length ? digit(a, i) : 0;
		const db = b !== null && i < b.length ? digit(b, i) : BASE;
		if (da === db) {
			out += DIGITS[da];
			continue;
		}
		const mid = Math.floor((da + db) / 2);
		if (mid > da) return out + DIGITS[mid];
		// db = da + 1: keep a's digit; below that digit the upper bound no longer binds.
		out += DIGITS[da];
		b = null;
	}
}
