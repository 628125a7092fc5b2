//! Ticket statuses, priorities and member roles, and the one table of allowed transitions.

use std::fmt;

/// A string that names no variant of one of this module's enums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEnumError {
    /// What was being parsed: "status", "priority" or "role".
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
}

impl fmt::Display for ParseEnumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} '{}'", self.kind, self.value)
    }
}

impl std::error::Error for ParseEnumError {}

wire_enum!(
    /// The swim lanes of the board, in display order.
    TicketStatus, "status", {
        Backlog => "BACKLOG",
        Todo => "TODO",
        InProgress => "IN_PROGRESS",
        NeedsFeedback => "NEEDS_FEEDBACK",
        ReadyToResume => "READY_TO_RESUME",
        Done => "DONE",
    }
);

wire_enum!(
    /// How urgent a ticket is.
    Priority, "priority", {
        Low => "LOW",
        Medium => "MEDIUM",
        High => "HIGH",
        Critical => "CRITICAL",
    }
);

wire_enum!(
    /// What a project member may do: owners manage the project and its members, members
    /// change tickets, viewers only read.
    MemberRole, "role", {
        Owner => "owner",
        Member => "member",
        Viewer => "viewer",
    }
);

// The enums come from a macro that cannot take `#[default]` for only some of them.
#[allow(clippy::derivable_impls)]
impl Default for Priority {
    fn default() -> Self {
        Priority::Medium
    }
}

#[allow(clippy::derivable_impls)]
impl Default for TicketStatus {
    fn default() -> Self {
        TicketStatus::Backlog
    }
}

impl MemberRole {
    /// Whether this role may see the board and its live events. Every role may today;
    /// the gateway takes a socket out of a room when a role change makes this false.
    pub const fn can_read(self) -> bool {
        matches!(
            self,
            MemberRole::Owner | MemberRole::Member | MemberRole::Viewer
        )
    }

    /// Whether this role may create, change, move or delete tickets.
    pub const fn can_write_tickets(self) -> bool {
        matches!(self, MemberRole::Owner | MemberRole::Member)
    }

    /// Whether this role may rename or delete the project and manage its members.
    pub const fn can_manage_project(self) -> bool {
        matches!(self, MemberRole::Owner)
    }
}

/// The allowed status changes, as (from, to) pairs. This is the only place they are
/// listed; `docs/state-machine.md` renders the same table. A move within one status
/// (a reorder inside a column) is always allowed and is not listed.
pub const TRANSITIONS: &[(TicketStatus, TicketStatus)] = {
    use TicketStatus::*;
    &[
        (Backlog, Todo),
        (Todo, Backlog),
        (Todo, InProgress),
        (InProgress, NeedsFeedback),
        (InProgress, Done),
        (InProgress, Backlog),
        (NeedsFeedback, ReadyToResume),
        (NeedsFeedback, Backlog),
        (ReadyToResume, InProgress),
        (ReadyToResume, Backlog),
        (Done, Todo),
    ]
};

impl TicketStatus {
    /// Whether a ticket in `self` may move to `to`.
    pub fn can_transition_to(self, to: TicketStatus) -> bool {
        self == to || TRANSITIONS.iter().any(|&(a, b)| a == self && b == to)
    }

    /// The statuses a ticket in `self` may move to, excluding `self`.
    pub fn next_statuses(self) -> impl Iterator<Item = TicketStatus> {
        TRANSITIONS
            .iter()
            .filter(move |(a, _)| *a == self)
            .map(|&(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_its_wire_spelling() {
        for s in TicketStatus::ALL {
            assert_eq!(s.as_str().parse::<TicketStatus>(), Ok(*s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::json!(s.as_str()))
            );
        }
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>(), Ok(*p));
        }
        for r in MemberRole::ALL {
            assert_eq!(r.as_str().parse::<MemberRole>(), Ok(*r));
        }
    }

    #[test]
    fn unknown_spellings_are_rejected() {
        assert!("backlog".parse::<TicketStatus>().is_err());
        assert!("ARCHIVED".parse::<TicketStatus>().is_err());
        assert!("".parse::<Priority>().is_err());
        assert!("admin".parse::<MemberRole>().is_err());
    }

    /// Every one of the 36 ordered pairs, spelled out, so that a change to the table is a
    /// deliberate change to this test too.
    #[test]
    fn transition_table_is_exactly_the_documented_one() {
        use TicketStatus::*;
        let allowed = |from: TicketStatus, to: TicketStatus| -> bool {
            matches!(
                (from, to),
                (Backlog, Backlog)
                    | (Backlog, Todo)
                    | (Todo, Todo)
                    | (Todo, Backlog)
                    | (Todo, InProgress)
                    | (InProgress, InProgress)
                    | (InProgress, NeedsFeedback)
                    | (InProgress, Done)
                    | (InProgress, Backlog)
                    | (NeedsFeedback, NeedsFeedback)
                    | (NeedsFeedback, ReadyToResume)
                    | (NeedsFeedback, Backlog)
                    | (ReadyToResume, ReadyToResume)
                    | (ReadyToResume, InProgress)
                    | (ReadyToResume, Backlog)
                    | (Done, Done)
                    | (Done, Todo)
            )
        };
        let mut checked = 0;
        for &from in TicketStatus::ALL {
            for &to in TicketStatus::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed(from, to),
                    "{from} -> {to}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 36);
    }

    #[test]
    fn done_tickets_cannot_go_back_to_backlog_directly() {
        assert!(!TicketStatus::Done.can_transition_to(TicketStatus::Backlog));
    }
}
