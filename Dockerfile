# Switchyard on the official Bun image.
FROM oven/bun:1.4.5-slim AS deps
WORKDIR /app
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile --production

FROM oven/bun:1.4.5-slim
WORKDIR /app
ENV NODE_ENV=production
# Bun reads its fetch concurrency cap only at process start: set here, `start` does not re-exec
# itself to raise it (a second process start, ~100 ms of cold start).
ENV BUN_CONFIG_MAX_HTTP_REQUESTS=65535
COPY --from=deps /app/node_modules ./node_modules
COPY package.json bunfig.toml tsconfig.json switchyard.yaml switchyard.fleet.yaml switchyard.schema.json ./
COPY src ./src
COPY routes ./routes
USER bun
EXPOSE 8080
# SIGTERM drains.
STOPSIGNAL SIGTERM
# (fly.toml runs switchyard.fleet.yaml instead: machines in several regions as one fleet.)
CMD ["bun", "src/cli.ts", "start", "switchyard.yaml"]
