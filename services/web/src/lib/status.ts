// The board's columns and the state machine's allowed moves (docs/state-machine.md).
// The protocol crate exports the status type but not its table as a value, so the table
// is restated here; src/lib/status.test.ts reads `TRANSITIONS` in
// shared/protocol/src/status.rs and fails when the two differ.
import type { TicketStatus } from '$lib/protocol';

/** The columns, in display order (`TicketStatus::ALL`). */
export const STATUSES: readonly TicketStatus[] = [
	'BACKLOG',
	'TODO',
	'IN_PROGRESS',
	'NEEDS_FEEDBACK',
	'READY_TO_RESUME',
	'DONE'
];

/** `TRANSITIONS` of shared/protocol/src/status.rs: the status changes; reorders are always allowed. */
export const TRANSITIONS: ReadonlyArray<readonly [TicketStatus, TicketStatus]> = [
	['BACKLOG', 'TODO'],
	['TODO', 'BACKLOG'],
	['TODO', 'IN_PROGRESS'],
	['IN_PROGRESS', 'NEEDS_FEEDBACK'],
	['IN_PROGRESS', 'DONE'],
	['IN_PROGRESS', 'BACKLOG'],
	['NEEDS_FEEDBACK', 'READY_TO_RESUME'],
	['NEEDS_FEEDBACK', 'BACKLOG'],
	['READY_TO_RESUME', 'IN_PROGRESS'],
	['READY_TO_RESUME', 'BACKLOG'],
	['DONE', 'TODO']
];

export const STATUS_LABELS: Record<TicketStatus, string> = {
	BACKLOG: 'Backlog',
	TODO: 'To do',
	IN_PROGRESS: 'In progress',
	NEEDS_FEEDBACK: 'Needs feedback',
	READY_TO_RESUME: 'Ready to resume',
	DONE: 'Done'
};

const allowed = new Set(TRANSITIONS.map(([from, to]) => `${from}>${to}`));

/** Whether a ticket in `from` may go to `to`; a reorder inside one column always may. */
export function canMove(from: TicketStatus, to: TicketStatus): boolean {
	return from === to || allowed.has(`${from}>${to}`);
}

/** The columns a ticket in `from` may be dropped in, its own included, in board order. */
export function allowedTargets(from: TicketStatus): TicketStatus[] {
	return STATUSES.filter((to) => canMove(from, to));
}
