// End-to-end tests of the gateway with the stock `socket.io-client` v4 package.
//
// The Rust test `cargo test -p gateway --test stock_client` starts a ticket API and two
// gateways, then runs `node --test` here with:
//   GATEWAY_URLS  comma-separated gateway base URLs (one or two)
//   API_URL       the ticket API base URL
//   TOKEN_ALICE   owner of PROJECT_ID
//   TOKEN_BOB     member of PROJECT_ID
//   TOKEN_MALLORY not a member of PROJECT_ID
//   PROJECT_ID    the board every test writes to
//   GATEWAY_INSTANCE_IDS  optional: the gateways' instance ids (e.g. "gw1,gw2") when both
//                 URLs are one load balancer; the cross-gateway test then proves, by the
//                 sid prefix, that its two sockets live on different replicas
// Without GATEWAY_URLS every test is skipped, so a bare `node --test` passes.
//
// The tests run one after another (node:test's default within a file) and share the
// board, so each one can predict the next seq from its own join ack.

import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { io } from "socket.io-client";

const GATEWAYS = (process.env.GATEWAY_URLS ?? "")
  .split(",")
  .map((url) => url.trim().replace(/\/+$/, ""))
  .filter(Boolean);

const INSTANCE_IDS = (process.env.GATEWAY_INSTANCE_IDS ?? "")
  .split(",")
  .map((id) => id.trim())
  .filter(Boolean);

/** The instance id of the gateway holding a connected socket's session (`gw1~…`). */
function replicaOf(socket) {
  const sid = socket.io.engine?.id ?? "";
  return sid.includes("~") ? sid.split("~")[0] : null;
}

const SKIP = GATEWAYS.length === 0 ? "GATEWAY_URLS is not set" : false;
const SKIP_UNLESS_TWO = SKIP || (GATEWAYS.length < 2 ? "GATEWAY_URLS names only one gateway" : false);

/** Environment variables the suite needs once GATEWAY_URLS is set. */
function requiredEnv(name) {
  if (SKIP) return "";
  const value = process.env[name];
  if (!value) throw new Error(`GATEWAY_URLS is set but ${name} is missing`);
  return value;
}

const API_URL = requiredEnv("API_URL").replace(/\/+$/, "");
const TOKEN_ALICE = requiredEnv("TOKEN_ALICE");
const TOKEN_BOB = requiredEnv("TOKEN_BOB");
const TOKEN_MALLORY = requiredEnv("TOKEN_MALLORY");
const PROJECT_ID = requiredEnv("PROJECT_ID");

/** Per-test limit; every single wait below is shorter, so a hang fails, then cleans up. */
const TEST_TIMEOUT_MS = 10_000;
const WAIT_MS = 5_000;
/** How long to keep listening for events that must not (or no longer) arrive. */
const QUIET_MS = 500;

const options = { skip: SKIP, timeout: TEST_TIMEOUT_MS };

const RUN = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let titleCounter = 0;
/** A title no other test (or earlier run against the same board) uses. */
function uniqueTitle(label) {
  titleCounter += 1;
  return `${label} ${RUN}-${titleCounter}`;
}

function show(value) {
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------
// REST API (setup)

async function api(method, path, token, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${API_URL}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: response.status, body: json };
}

async function restCreateTicket(token, title, status) {
  const body = status ? { title, status } : { title };
  const response = await api("POST", `/api/projects/${PROJECT_ID}/tickets`, token, body);
  assert.equal(response.status, 201, `create ticket: ${show(response.body)}`);
  assert.equal(response.body.title, title);
  return response.body;
}

async function restGetTicket(token, id) {
  return api("GET", `/api/tickets/${id}`, token);
}

// ---------------------------------------------------------------------------------------
// Sockets

/**
 * Records every board event a socket receives as `{name, data, meta}`, from the moment it
 * is attached (attach it before joining: a resume replays events before the join ack).
 * Presence announcements (`room:userJoined` / `room:userLeft`) are not board events: they
 * carry no seq and arrive at the gateway's coalescing interval, so they are left out here.
 */
class Recorder {
  constructor(socket, label) {
    this.label = label;
    this.events = [];
    this.waiters = new Set();
    socket.onAny((name, data, meta) => {
      if (name.startsWith("room:")) return;
      const event = { name, data, meta };
      this.events.push(event);
      for (const waiter of [...this.waiters]) waiter(event);
    });
  }

  /** Events whose name is in `names`. */
  named(...names) {
    return this.events.filter((event) => names.includes(event.name));
  }

  summary() {
    return show(this.events.map((e) => [e.name, e.meta?.seq]));
  }
}

/**
 * One test's sockets and waits. Every wait has its own timeout (at most WAIT_MS) and also
 * ends when node:test aborts the test, so `close()` in `finally` always runs promptly.
 */
class Scope {
  constructor(t) {
    this.signal = t.signal;
    this.sockets = [];
  }

  /** `io(url, {auth: {token}, transports, forceNew: true, reconnection: false})`. */
  socket(url, token, { transports = ["polling", "websocket"], auth } = {}) {
    const socket = io(url, {
      auth: auth ?? { token },
      transports,
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
      // engine.io-client never aborts a pending long-poll request on close, so a gateway
      // that hangs a poll would keep this process (and the Rust test) alive for ever.
      // Unref'd sockets cannot; every wait here holds its own timer instead.
      autoUnref: true,
    });
    this.sockets.push(socket);
    return socket;
  }

  close() {
    for (const socket of this.sockets) {
      socket.offAny();
      socket.disconnect();
    }
    this.sockets = [];
  }

  /**
   * A promise settled by `executor(resolve, reject, onCleanup)`, rejected after `ms` or
   * when the test is aborted. Marked as handled, so it may be awaited later. `what` (a
   * string, or a function giving one when the wait fails) names it in the error.
   */
  until(what, executor, ms = WAIT_MS) {
    const describe = () => (typeof what === "function" ? what() : what);
    const promise = new Promise((resolve, reject) => {
      const cleanups = [];
      let done = false;
      const finish = (settle, value) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.signal?.removeEventListener("abort", onAbort);
        for (const cleanup of cleanups) cleanup();
        settle(value);
      };
      const timer = setTimeout(() => finish(reject, new Error(`timed out after ${ms} ms waiting for ${describe()}`)), ms);
      const onAbort = () => finish(reject, new Error(`test aborted while waiting for ${describe()}`));
      if (this.signal?.aborted) return onAbort();
      this.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        executor(
          (value) => finish(resolve, value),
          (error) => finish(reject, error),
          (cleanup) => cleanups.push(cleanup),
        );
      } catch (error) {
        finish(reject, error);
      }
    });
    promise.catch(() => {});
    return promise;
  }

  /** Resolves on `connect`; rejects with the `connect_error`. */
  connected(socket, what = "connect") {
    return this.until(what, (resolve, reject, onCleanup) => {
      if (socket.connected) return resolve();
      const onConnect = () => resolve();
      const onError = (error) => reject(new Error(`connect_error: ${error.message} ${show(error.data)}`));
      socket.once("connect", onConnect);
      socket.once("connect_error", onError);
      onCleanup(() => {
        socket.off("connect", onConnect);
        socket.off("connect_error", onError);
      });
    });
  }

  /** Resolves with the error of `connect_error`; rejects if the socket connects. */
  refused(socket, what = "connect_error") {
    return this.until(what, (resolve, reject, onCleanup) => {
      const onConnect = () => reject(new Error(`${what}: the socket connected`));
      const onError = (error) => resolve(error);
      socket.once("connect", onConnect);
      socket.once("connect_error", onError);
      onCleanup(() => {
        socket.off("connect", onConnect);
        socket.off("connect_error", onError);
      });
    });
  }

  /**
   * Resolves with the transport name once the Engine.IO connection runs over WebSocket
   * (the engine's `upgrade` event); rejects on `upgradeError`. Call it right after
   * creating the socket: the engine exists from then on and has not opened yet.
   */
  upgraded(socket) {
    return this.until("the upgrade to websocket", (resolve, reject, onCleanup) => {
      const engine = socket.io.engine;
      assert.ok(engine, "the manager creates its engine when the socket is created");
      if (engine.transport?.name === "websocket") return resolve("websocket");
      const onUpgrade = (transport) => resolve(transport.name);
      const onUpgradeError = (error) => reject(new Error(`upgradeError: ${error.message}`));
      engine.once("upgrade", onUpgrade);
      engine.once("upgradeError", onUpgradeError);
      onCleanup(() => {
        engine.off("upgrade", onUpgrade);
        engine.off("upgradeError", onUpgradeError);
      });
    });
  }

  /** The transport the Engine.IO connection opened with. */
  openedWith(socket) {
    return this.until("the Engine.IO open", (resolve, reject, onCleanup) => {
      const onOpen = () => resolve(socket.io.engine.transport.name);
      socket.io.once("open", onOpen);
      onCleanup(() => socket.io.off("open", onOpen));
    });
  }

  /** `socket.emit(event, payload, ack)`, resolving with the ack's argument. */
  async ack(socket, event, payload, ms = WAIT_MS) {
    try {
      return await socket.timeout(ms).emitWithAck(event, payload);
    } catch (error) {
      throw new Error(`no ack for ${event} ${show(payload)} within ${ms} ms (${error.message})`);
    }
  }

  /** The first recorded event matching `predicate`, waiting for it if need be. */
  event(recorder, what, predicate, ms = WAIT_MS) {
    return this.until(() => `${what} on ${recorder.label} (got ${recorder.summary()})`, (resolve, reject, onCleanup) => {
      const found = recorder.events.find(predicate);
      if (found) return resolve(found);
      const waiter = (event) => {
        if (predicate(event)) resolve(event);
      };
      recorder.waiters.add(waiter);
      onCleanup(() => recorder.waiters.delete(waiter));
    }, ms);
  }

  sleep(ms) {
    return sleep(ms, undefined, { signal: this.signal });
  }
}

function assertJoinAck(ack) {
  assert.equal(ack?.ok, true, `join ack: ${show(ack)}`);
  assert.ok(Number.isInteger(ack.seq) && ack.seq >= 0, `join ack seq: ${show(ack)}`);
  assert.ok(Number.isInteger(ack.userCount) && ack.userCount >= 1, `join ack userCount: ${show(ack)}`);
}

function assertMeta(meta, seq, what) {
  assert.equal(typeof meta, "object", `${what}: the event has no meta argument`);
  assert.equal(meta.projectId, PROJECT_ID, `${what}: meta ${show(meta)}`);
  assert.equal(meta.seq, seq, `${what}: meta ${show(meta)}`);
  assert.equal(typeof meta.ts, "number", `${what}: meta ${show(meta)}`);
}

function assertTicket(ticket, expected, what) {
  assert.equal(typeof ticket?.id, "string", `${what}: ${show(ticket)}`);
  assert.equal(ticket.projectId, PROJECT_ID, `${what}: ${show(ticket)}`);
  assert.equal(typeof ticket.rank, "string", `${what}: ${show(ticket)}`);
  assert.equal(typeof ticket.position, "number", `${what}: ${show(ticket)}`);
  assert.equal(typeof ticket.version, "number", `${what}: ${show(ticket)}`);
  for (const [key, value] of Object.entries(expected)) {
    assert.deepEqual(ticket[key], value, `${what}: ${key} of ${show(ticket)}`);
  }
}

function sameTicket(id) {
  return (event) => event.name === "ticket:created" && event.data?.id === id;
}

// ---------------------------------------------------------------------------------------
// a. and b.: connect, join, receive a live event

async function liveEventFlow(t, transports) {
  const scope = new Scope(t);
  try {
    const alice = scope.socket(GATEWAYS[0], TOKEN_ALICE, { transports });
    const recorder = new Recorder(alice, "alice");
    const opened = scope.openedWith(alice);
    const upgraded = scope.upgraded(alice);
    await scope.connected(alice);
    assert.equal(await opened, transports[0], "the Engine.IO connection opens with the first transport");

    const joined = await scope.ack(alice, "project:join", PROJECT_ID);
    assertJoinAck(joined);

    assert.equal(await upgraded, "websocket");
    assert.equal(alice.io.engine.transport.name, "websocket");

    const title = uniqueTitle(`live ${transports.join("+")}`);
    const ticket = await restCreateTicket(TOKEN_ALICE, title);
    const created = await scope.event(recorder, "ticket:created", sameTicket(ticket.id));
    assertTicket(created.data, { id: ticket.id, title, status: "BACKLOG", version: ticket.version }, "ticket:created data");
    assertMeta(created.meta, joined.seq + 1, "ticket:created");
    assert.deepEqual(recorder.events.map((e) => e.name), ["ticket:created"], `alice got ${recorder.summary()}`);
  } finally {
    scope.close();
  }
}

test("a. default transports: polling handshake, upgrade to websocket, live ticket:created", options, async (t) => {
  await liveEventFlow(t, ["polling", "websocket"]);
});

test("b. websocket-only: join and a live ticket:created", options, async (t) => {
  await liveEventFlow(t, ["websocket"]);
});

// ---------------------------------------------------------------------------------------
// c. commands on one gateway reach a member on the other

test("c. two gateways: ticket:create and ticket:move acks, both members get the same seqs", { ...options, skip: SKIP_UNLESS_TWO }, async (t) => {
  const scope = new Scope(t);
  try {
    const alice = scope.socket(GATEWAYS[0], TOKEN_ALICE, { transports: ["websocket"] });
    await scope.connected(alice, "alice's connect");
    let bob = scope.socket(GATEWAYS[1], TOKEN_BOB, { transports: ["websocket"] });
    await scope.connected(bob, "bob's connect");
    if (INSTANCE_IDS.length > 0) {
      // One balancer in front of both gateways: reconnect bob until the balancer puts him
      // on the replica alice is not on (round-robin does so at the next connection).
      for (let attempt = 0; replicaOf(bob) === replicaOf(alice) && attempt < 4; attempt += 1) {
        bob.disconnect();
        bob = scope.socket(GATEWAYS[1], TOKEN_BOB, { transports: ["websocket"] });
        await scope.connected(bob, "bob's reconnect");
      }
      assert.ok(INSTANCE_IDS.includes(replicaOf(alice)), `alice's sid ${alice.io.engine.id}`);
      assert.ok(INSTANCE_IDS.includes(replicaOf(bob)), `bob's sid ${bob.io.engine.id}`);
      assert.notEqual(replicaOf(bob), replicaOf(alice), "the two sockets are on different gateways");
    }
    const recorders = [new Recorder(alice, "alice@gateway1"), new Recorder(bob, "bob@gateway2")];
    const [aliceJoined, bobJoined] = await Promise.all([
      scope.ack(alice, "project:join", PROJECT_ID),
      scope.ack(bob, "project:join", { projectId: PROJECT_ID }),
    ]);
    assertJoinAck(aliceJoined);
    assertJoinAck(bobJoined);
    assert.equal(bobJoined.seq, aliceJoined.seq, "nothing was written between the two joins");

    const title = uniqueTitle("two gateways");
    const mutationId = `m-${RUN}-create`;
    const created = await scope.ack(alice, "ticket:create", { projectId: PROJECT_ID, ticket: { title }, mutationId });
    assert.equal(created?.ok, true, `ticket:create ack: ${show(created)}`);
    assertTicket(created, { title, status: "BACKLOG" }, "ticket:create ack");

    const createdSeq = aliceJoined.seq + 1;
    for (const recorder of recorders) {
      const event = await scope.event(recorder, "ticket:created", sameTicket(created.id));
      assertTicket(event.data, { id: created.id, title, status: "BACKLOG", version: created.version, rank: created.rank }, `${recorder.label} ticket:created`);
      assertMeta(event.meta, createdSeq, `${recorder.label} ticket:created`);
      assert.equal(event.meta.mutationId, mutationId, `${recorder.label}: the command's mutationId comes back in meta`);
    }

    const moved = await scope.ack(alice, "ticket:move", {
      ticketId: created.id,
      toStatus: "TODO",
      position: 0,
      expectedVersion: created.version,
    });
    assert.equal(moved?.ok, true, `ticket:move ack: ${show(moved)}`);
    assert.equal(moved.fromStatus, "BACKLOG", `ticket:move ack: ${show(moved)}`);
    assertTicket(moved.ticket, { id: created.id, status: "TODO", version: created.version + 1, position: 0 }, "ticket:move ack ticket");

    for (const recorder of recorders) {
      const event = await scope.event(recorder, "ticket:moved", (e) => e.name === "ticket:moved" && e.data?.ticketId === created.id);
      assert.equal(event.data.fromStatus, "BACKLOG", `${recorder.label}: ${show(event.data)}`);
      assert.equal(event.data.toStatus, "TODO", `${recorder.label}: ${show(event.data)}`);
      assert.equal(event.data.projectId, PROJECT_ID, `${recorder.label}: ${show(event.data)}`);
      assert.equal(event.data.rank, moved.ticket.rank, `${recorder.label}: ${show(event.data)}`);
      assertTicket(event.data.ticket, { id: created.id, status: "TODO", version: created.version + 1 }, `${recorder.label} ticket:moved ticket`);
      assertMeta(event.meta, createdSeq + 1, `${recorder.label} ticket:moved`);
      assert.deepEqual(
        recorder.events.map((e) => [e.name, e.meta?.seq]),
        [["ticket:created", createdSeq], ["ticket:moved", createdSeq + 1]],
        `${recorder.label} got exactly these events`,
      );
    }
  } finally {
    scope.close();
  }
});

// ---------------------------------------------------------------------------------------
// d. non-members

test("d. a non-member's join is refused with NOT_FOUND and it receives no board events", options, async (t) => {
  const scope = new Scope(t);
  try {
    const alice = scope.socket(GATEWAYS[0], TOKEN_ALICE, { transports: ["websocket"] });
    const aliceRecorder = new Recorder(alice, "alice");
    // Mallory on every gateway, including alice's (local fan-out) and the other (Redis).
    const mallories = GATEWAYS.map((url, i) => {
      const socket = scope.socket(url, TOKEN_MALLORY, { transports: ["websocket"] });
      return { socket, recorder: new Recorder(socket, `mallory@gateway${i + 1}`) };
    });
    await scope.connected(alice, "alice's connect");
    for (const { socket, recorder } of mallories) {
      await scope.connected(socket, `${recorder.label}'s connect (her token is valid)`);
      for (const join of [PROJECT_ID, { projectId: PROJECT_ID, sinceSeq: 0 }]) {
        const refused = await scope.ack(socket, "project:join", join);
        assert.equal(refused?.ok, false, `${recorder.label} join ${show(join)}: ${show(refused)}`);
        assert.equal(refused.error?.code, "NOT_FOUND", `${recorder.label} join ${show(join)}: ${show(refused)}`);
        assert.equal(typeof refused.error.message, "string", show(refused));
      }
    }
    const joined = await scope.ack(alice, "project:join", PROJECT_ID);
    assertJoinAck(joined);

    const ticket = await restCreateTicket(TOKEN_ALICE, uniqueTitle("secret"));
    const created = await scope.event(aliceRecorder, "ticket:created", sameTicket(ticket.id));
    assertMeta(created.meta, joined.seq + 1, "alice's ticket:created");
    await scope.sleep(QUIET_MS);
    for (const { recorder } of mallories) {
      assert.deepEqual(recorder.events, [], `${recorder.label} must receive nothing, got ${recorder.summary()}`);
    }
  } finally {
    scope.close();
  }
});

// ---------------------------------------------------------------------------------------
// e. bad tokens

function forged(token) {
  const [header, payload, signature] = token.split(".");
  // Change a character in the middle of the signature: all 6 of its bits are signature bits.
  const at = Math.floor(signature.length / 2);
  const other = signature[at] === "A" ? "B" : "A";
  return `${header}.${payload}.${signature.slice(0, at)}${other}${signature.slice(at + 1)}`;
}

test("e. a bad or missing token gets connect_error \"Not authorized\" with code UNAUTHORIZED", options, async (t) => {
  const scope = new Scope(t);
  try {
    const cases = [
      { what: "a garbage token over websocket", token: "not-a-jwt", transports: ["websocket"] },
      { what: "a forged token over polling", token: forged(TOKEN_ALICE), transports: ["polling", "websocket"] },
      { what: "no token", auth: {}, transports: ["websocket"] },
    ];
    for (const [i, url] of GATEWAYS.entries()) {
      for (const { what, token, auth, transports } of cases) {
        const socket = scope.socket(url, token, { transports, auth });
        const error = await scope.refused(socket, `connect_error for ${what} on gateway${i + 1}`);
        assert.equal(error.message, "Not authorized", `${what}: ${error.message} ${show(error.data)}`);
        assert.equal(error.data?.code, "UNAUTHORIZED", `${what}: ${show(error.data)}`);
        assert.equal(socket.connected, false);
      }
    }
  } finally {
    scope.close();
  }
});

// ---------------------------------------------------------------------------------------
// f. resume by seq

test("f. a socket that rejoins with sinceSeq gets exactly the events it missed, in order", options, async (t) => {
  const scope = new Scope(t);
  try {
    // Bob stays joined throughout (on the other gateway if there is one). Once he has
    // seen both events they have gone through the event pipeline, so they can be
    // replayed; without that, the resume could race the publication.
    const bob = scope.socket(GATEWAYS[GATEWAYS.length - 1], TOKEN_BOB, { transports: ["websocket"] });
    const bobRecorder = new Recorder(bob, "bob");
    await scope.connected(bob, "bob's connect");
    assertJoinAck(await scope.ack(bob, "project:join", PROJECT_ID));

    const first = scope.socket(GATEWAYS[0], TOKEN_ALICE, { transports: ["websocket"] });
    await scope.connected(first, "alice's first connect");
    const before = await scope.ack(first, "project:join", PROJECT_ID);
    assertJoinAck(before);
    const since = before.seq;
    first.disconnect();

    const missed = [];
    for (const label of ["missed 1", "missed 2"]) {
      missed.push(await restCreateTicket(TOKEN_ALICE, uniqueTitle(label)));
    }
    for (const ticket of missed) {
      await scope.event(bobRecorder, `ticket:created ${ticket.id}`, sameTicket(ticket.id));
    }

    // The stock default transports: the replay may travel over polling.
    const second = scope.socket(GATEWAYS[0], TOKEN_ALICE, { transports: ["polling", "websocket"] });
    const recorder = new Recorder(second, "alice's second socket");
    await scope.connected(second, "alice's second connect");
    const resumed = await scope.ack(second, "project:join", { projectId: PROJECT_ID, sinceSeq: since });
    assertJoinAck(resumed);
    assert.equal(resumed.seq, since + 2, `resume ack: ${show(resumed)}`);
    await scope.sleep(QUIET_MS);

    assert.deepEqual(
      recorder.events.map((e) => [e.name, e.meta?.seq, e.data?.id]),
      [
        ["ticket:created", since + 1, missed[0].id],
        ["ticket:created", since + 2, missed[1].id],
      ],
      `the replay is exactly the two missed events; got ${recorder.summary()}`,
    );
    for (const [i, event] of recorder.events.entries()) {
      assertMeta(event.meta, since + 1 + i, "replayed ticket:created");
      assert.equal(event.data.title, missed[i].title);
    }
  } finally {
    scope.close();
  }
});

// ---------------------------------------------------------------------------------------
// g. command errors

test("g. a refused command comes back in the ack: INVALID_TRANSITION, VERSION_CONFLICT", options, async (t) => {
  const scope = new Scope(t);
  try {
    const alice = scope.socket(GATEWAYS[0], TOKEN_ALICE, { transports: ["websocket"] });
    await scope.connected(alice);
    const ticket = await restCreateTicket(TOKEN_ALICE, uniqueTitle("refused move"));
    assert.equal(ticket.status, "BACKLOG");

    const invalid = await scope.ack(alice, "ticket:move", { ticketId: ticket.id, toStatus: "DONE" });
    assert.equal(invalid?.ok, false, `BACKLOG → DONE: ${show(invalid)}`);
    assert.equal(invalid.error?.code, "INVALID_TRANSITION", show(invalid));
    assert.equal(typeof invalid.error.message, "string", show(invalid));

    const stale = await scope.ack(alice, "ticket:move", {
      ticketId: ticket.id,
      toStatus: "TODO",
      expectedVersion: ticket.version + 1,
    });
    assert.equal(stale?.ok, false, `stale expectedVersion: ${show(stale)}`);
    assert.equal(stale.error?.code, "VERSION_CONFLICT", show(stale));
    assertTicket(stale.error.details?.ticket, { id: ticket.id, status: "BACKLOG", version: ticket.version }, "VERSION_CONFLICT details.ticket");

    const now = await restGetTicket(TOKEN_ALICE, ticket.id);
    assert.equal(now.status, 200, show(now.body));
    assert.equal(now.body.status, "BACKLOG", "a refused command changes nothing");
    assert.equal(now.body.version, ticket.version, "a refused command changes nothing");
  } finally {
    scope.close();
  }
});

// ---------------------------------------------------------------------------------------
// h. the other two commands

test("h. ticket:update and ticket:delete acks and their events", options, async (t) => {
  const scope = new Scope(t);
  try {
    const alice = scope.socket(GATEWAYS[0], TOKEN_ALICE, { transports: ["websocket"] });
    const recorder = new Recorder(alice, "alice");
    await scope.connected(alice);
    const joined = await scope.ack(alice, "project:join", PROJECT_ID);
    assertJoinAck(joined);

    const title = uniqueTitle("to update");
    const created = await scope.ack(alice, "ticket:create", { projectId: PROJECT_ID, ticket: { title, priority: "HIGH", labels: ["e2e"] } });
    assert.equal(created?.ok, true, `ticket:create ack: ${show(created)}`);
    assertTicket(created, { title, priority: "HIGH", labels: ["e2e"], status: "BACKLOG" }, "ticket:create ack");

    const renamed = uniqueTitle("updated");
    const updated = await scope.ack(alice, "ticket:update", { ticket: { id: created.id, title: renamed }, expectedVersion: created.version });
    assert.equal(updated?.ok, true, `ticket:update ack: ${show(updated)}`);
    assertTicket(updated, { id: created.id, title: renamed, version: created.version + 1 }, "ticket:update ack");

    const deleted = await scope.ack(alice, "ticket:delete", { ticketId: created.id });
    assert.deepEqual(deleted, { ok: true }, "ticket:delete ack");

    const gone = await scope.event(recorder, "ticket:deleted", (e) => e.name === "ticket:deleted");
    assert.equal(gone.data, created.id);
    assert.deepEqual(
      recorder.events.map((e) => [e.name, e.meta?.seq]),
      [["ticket:created", joined.seq + 1], ["ticket:updated", joined.seq + 2], ["ticket:deleted", joined.seq + 3]],
      `alice got ${recorder.summary()}`,
    );
    assertTicket(recorder.events[1].data, { id: created.id, title: renamed, version: created.version + 1 }, "ticket:updated data");
    assert.equal((await restGetTicket(TOKEN_ALICE, created.id)).status, 404);
  } finally {
    scope.close();
  }
});
