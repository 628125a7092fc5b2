# syntax=docker/dockerfile:1
# The web board: the static files of services/web (npm run build → services/web/dist)
# served by an unprivileged nginx. Build from the repository root:
#   docker build -f deploy/web.Dockerfile \
#     --build-arg KANBAN_GIT_REVISION="$(git rev-parse HEAD)" -t kanban/web .
#
# The image serves only the board (and /healthz, /readyz); /api and /socket.io are routed
# in front of it, by the compose stack's nginx (deploy/compose/nginx.conf) or by the
# Kubernetes Ingress.

FROM node:20.19.2-bookworm-slim AS build
WORKDIR /src/services/web
# The package layer is rebuilt only when the lockfile changes.
COPY services/web/package.json services/web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY services/web/ ./
RUN npm run build

# nginx as user 101, listening on 8080; every path it writes is under /tmp.
FROM nginxinc/nginx-unprivileged:1.28.0-alpine
ARG KANBAN_GIT_REVISION=unknown
ARG KANBAN_VERSION=0.1.0
LABEL org.opencontainers.image.title="kanban-web" \
      org.opencontainers.image.description="Kanban web board: static SvelteKit build behind nginx" \
      org.opencontainers.image.version="${KANBAN_VERSION}" \
      org.opencontainers.image.revision="${KANBAN_GIT_REVISION}" \
      org.opencontainers.image.licenses="MIT"
COPY deploy/web/nginx.conf /etc/nginx/nginx.conf
COPY --from=build /src/services/web/dist /usr/share/nginx/html
USER 101:101
EXPOSE 8080
# nginx's base image has busybox wget; no curl is added.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
