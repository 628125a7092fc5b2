// The socket's state as the person sees it (`data-connection` on the indicator).
export type ConnectionState = 'connected' | 'reconnecting' | 'offline';

export class ConnectionStore {
	state = $state<ConnectionState>('reconnecting');
	/** The client library's current reconnection attempt (0 before the first connect). */
	attempt = $state(0);
	/** The Engine.IO session id of the live socket (`gw1~…`: which gateway serves it). */
	sessionId = $state('');

	connected(sessionId = ''): void {
		this.state = 'connected';
		this.sessionId = sessionId;
		this.attempt = 0;
	}
	reconnecting(attempt: number): void {
		this.state = 'reconnecting';
		this.attempt = attempt;
	}
	offline(): void {
		this.state = 'offline';
	}
}
