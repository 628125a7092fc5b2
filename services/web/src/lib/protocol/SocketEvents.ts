// Generated from shared/protocol by its `typescript` test. Do not edit by hand.
import type { AuthExpired } from "./AuthExpired";
import type { BoardEvent } from "./BoardEvent";
import type { CreateTicketCommand } from "./CreateTicketCommand";
import type { DeleteTicketCommand } from "./DeleteTicketCommand";
import type { ErrorAck } from "./ErrorAck";
import type { ErrorDetail } from "./ErrorDetail";
import type { EventMeta } from "./EventMeta";
import type { Hint } from "./Hint";
import type { HintCommand } from "./HintCommand";
import type { JoinAck } from "./JoinAck";
import type { JoinArg } from "./JoinArg";
import type { LeaveArg } from "./LeaveArg";
import type { MoveAck } from "./MoveAck";
import type { MoveTicketCommand } from "./MoveTicketCommand";
import type { OkAck } from "./OkAck";
import type { PresenceUpdate } from "./PresenceUpdate";
import type { ProjectRemoved } from "./ProjectRemoved";
import type { Resync } from "./Resync";
import type { TicketAck } from "./TicketAck";
import type { UpdateTicketCommand } from "./UpdateTicketCommand";

/**
 * Server → client events. A board event's handler gets `(data, meta)`; the others one
 * argument.
 */
export type ServerToClientEvents = {
  [E in BoardEvent as E["event"]]: (data: E["data"], meta: EventMeta) => void;
} & {
  "room:userJoined": (update: PresenceUpdate) => void;
  "room:userLeft": (update: PresenceUpdate) => void;
  "ticket:hint": (hint: Hint) => void;
  "project:resync": (resync: Resync) => void;
  "project:removed": (removed: ProjectRemoved) => void;
  "auth:expired": (expired: AuthExpired) => void;
  "error": (error: ErrorDetail) => void;
};

/**
 * Client → server commands. The ack callback's answer is `{ok: true, ...}` or an
 * `ErrorAck`.
 */
export type ClientToServerEvents = {
  "project:join": (arg: JoinArg, ack?: (answer: JoinAck | ErrorAck) => void) => void;
  "project:leave": (arg: LeaveArg, ack?: (answer: OkAck | ErrorAck) => void) => void;
  "ticket:create": (command: CreateTicketCommand, ack?: (answer: TicketAck | ErrorAck) => void) => void;
  "ticket:update": (command: UpdateTicketCommand, ack?: (answer: TicketAck | ErrorAck) => void) => void;
  "ticket:move": (command: MoveTicketCommand, ack?: (answer: MoveAck | ErrorAck) => void) => void;
  "ticket:delete": (command: DeleteTicketCommand, ack?: (answer: OkAck | ErrorAck) => void) => void;
  "ticket:hint": (command: HintCommand, ack?: (answer: OkAck | ErrorAck) => void) => void;
};
