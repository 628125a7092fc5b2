DROP TABLE events; DROP TABLE ticket_transitions; DROP TABLE tickets; DROP TABLE project_members; DROP TABLE projects;
