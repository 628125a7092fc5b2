// The ticket API over fetch, same origin (`/api/...`), with the tab's bearer token.
import { ApiError } from '$lib/sync/engine';
import type {
	BoardSnapshot,
	EventsPage,
	MemberRole,
	Project,
	ProjectMember,
	TicketTransition
} from '$lib/protocol';

export type TokenSource = () => string | null;

export class Api {
	readonly #token: TokenSource;
	readonly #base: string;
	constructor(token: TokenSource, base = '') {
		this.#token = token;
		this.#base = base;
	}

	async request<T>(method: string, path: string, body?: unknown): Promise<T> {
		const headers: Record<string, string> = {};
		const token = this.#token();
		if (token) headers.authorization = `Bearer ${token}`;
		if (body !== undefined) headers['content-type'] = 'application/json';
		let response: Response;
		try {
			response = await fetch(`${this.#base}${path}`, {
				method,
				headers,
				body: body === undefined ? undefined : JSON.stringify(body)
			});
		} catch {
			throw new ApiError(0, 'UNAVAILABLE', 'the server cannot be reached');
		}
		const text = await response.text();
		let json: unknown = null;
		try {
			json = text ? JSON.parse(text) : null;
		} catch {
			json = null;
		}
		if (!response.ok) {
			const error = (json as { error?: { code?: string; message?: string } } | null)?.error;
			throw new ApiError(
				response.status,
				error?.code ?? 'INTERNAL',
				error?.message ?? `the server answered ${response.status}`
			);
		}
		return json as T;
	}

	devToken(userId: string, name: string): Promise<{ token: string }> {
		return this.request('POST', '/api/auth/dev-token', { userId, name: name || undefined });
	}
	projects(): Promise<Project[]> {
		return this.request('GET', '/api/projects');
	}
	createProject(name: string, description?: string): Promise<Project> {
		return this.request('POST', '/api/projects', { name, description: description || undefined });
	}
	members(projectId: string): Promise<ProjectMember[]> {
		return this.request('GET', `/api/projects/${projectId}/members`);
	}
	addMember(projectId: string, userId: string, role: MemberRole): Promise<ProjectMember> {
		return this.request('POST', `/api/projects/${projectId}/members`, { userId, role });
	}
	snapshot(projectId: string): Promise<BoardSnapshot> {
		return this.request('GET', `/api/projects/${projectId}`);
	}
	events(projectId: string, since: number): Promise<EventsPage> {
		return this.request('GET', `/api/projects/${projectId}/events?since=${since}&limit=1000`);
	}
	transitions(ticketId: string): Promise<TicketTransition[]> {
		return this.request('GET', `/api/tickets/${ticketId}/transitions`);
	}
}
