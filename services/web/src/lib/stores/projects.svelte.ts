// The signed-in user's boards, and the board that is open.
import type { Project } from '$lib/protocol';

class ProjectStore {
	list = $state.raw<Project[]>([]);
	current = $state.raw<Project | null>(null);

	init(projects: Project[]): void {
		this.list = projects;
	}
	add(project: Project): void {
		this.list = [project, ...this.list.filter((p) => p.id !== project.id)];
	}
	/** The open board changed (`project:updated`), or was deleted (`null`). */
	setCurrent(project: Project | null): void {
		const previous = this.current;
		this.current = project;
		if (project) this.list = this.list.map((p) => (p.id === project.id ? project : p));
		else if (previous) this.list = this.list.filter((p) => p.id !== previous.id);
	}
}

export const projects = new ProjectStore();
