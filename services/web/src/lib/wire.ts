// TEMPORARY: wire types typed after docs/events.md and docs/PROTOCOL.md, until the
// generated declarations from shared/protocol land in $lib/protocol.
export type TicketStatus =
	| 'BACKLOG'
	| 'TODO'
	| 'IN_PROGRESS'
	| 'NEEDS_FEEDBACK'
	| 'READY_TO_RESUME'
	| 'DONE';
export type Priority = 'LOW' | 'MEDIUM' | 'HIGH' | 'CRITICAL';
export type MemberRole = 'owner' | 'member' | 'viewer';
export type ErrorCode =
	| 'UNAUTHORIZED'
	| 'FORBIDDEN'
	| 'NOT_FOUND'
	| 'VALIDATION'
	| 'INVALID_TRANSITION'
	| 'VERSION_CONFLICT'
	| 'PAYLOAD_TOO_LARGE'
	| 'RATE_LIMITED'
	| 'UNAVAILABLE'
	| 'INTERNAL';

export interface Project {
	id: string;
	name: string;
	description: string | null;
	createdAt: string;
	updatedAt: string;
}
export interface ProjectMember {
	projectId: string;
	userId: string;
	role: MemberRole;
	createdAt: string;
}
export interface Ticket {
	id: string;
	projectId: string;
	title: string;
	description: string | null;
	status: TicketStatus;
	priority: Priority;
	labels: string[];
	rank: string;
	position: number;
	version: number;
	createdAt: string;
	updatedAt: string;
}
export interface TicketTransition {
	id: number;
	ticketId: string;
	fromStatus: TicketStatus;
	toStatus: TicketStatus;
	triggeredBy: string;
	reason: string | null;
	at: string;
}
export interface BoardSnapshot {
	project: Project;
	tickets: Ticket[];
	seq: number;
}
export interface TicketMovedPayload {
	ticketId: string;
	fromStatus: TicketStatus;
	toStatus: TicketStatus;
	projectId: string;
	position?: number;
	rank: string;
	ticket: Ticket;
}
export interface MemberChangedPayload {
	projectId: string;
	userId: string;
	role?: MemberRole;
}
export interface RankEntry {
	ticketId: string;
	rank: string;
}
export interface ColumnRebalancedPayload {
	projectId: string;
	status: TicketStatus;
	ranks: RankEntry[];
}
export interface EventMeta {
	projectId: string;
	seq: number;
	ts: number;
	mutationId?: string;
}
export interface EventEnvelope {
	projectId: string;
	seq: number;
	event: string;
	data: unknown;
	ts: number;
	mutationId?: string;
	traceparent?: string;
}
export interface EventPage {
	events: EventEnvelope[];
	truncated: boolean;
}
export interface ErrorDetail {
	code: ErrorCode;
	message: string;
	details?: { ticket?: Ticket } & Record<string, unknown>;
}
export interface ErrorBody {
	error: ErrorDetail;
}
export interface PresenceUser {
	id: string;
	name: string;
}
export interface PresencePayload {
	projectId: string;
	userCount: number;
	users: PresenceUser[];
}
export type HintAction = 'dragging' | 'editing' | 'idle';
export interface TicketHint {
	projectId: string;
	ticketId: string;
	action: HintAction;
	userId: string;
	name: string;
	expiresAt: number;
}
export interface ResyncPayload {
	projectId: string;
	reason: string;
	seq: number;
}
export interface JoinAck {
	ok: true;
	seq: number;
	userCount: number;
}
export type AckError = { ok: false; error: ErrorDetail };
export type Ack<T> = ({ ok: true } & T) | AckError;

/** Ordered statuses, the board's columns. */
export const TICKET_STATUSES: readonly TicketStatus[] = [
	'BACKLOG',
	'TODO',
	'IN_PROGRESS',
	'NEEDS_FEEDBACK',
	'READY_TO_RESUME',
	'DONE'
];

/** shared/protocol/src/status.rs `TRANSITIONS`: allowed status changes (reorders always allowed). */
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
