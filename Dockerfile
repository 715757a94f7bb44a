# Lab Orchestrator image: compiled TypeScript + bundled front end, non-root.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY public ./public
COPY scripts ./scripts
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# The local QEMU backend (the default) and its lab-tiny guest image, built from Debian packages only.
# On a cluster (BACKEND=kubevirt) these are unused; drop them there to slim the image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils genisoimage busybox-static linux-image-amd64 cpio e2fsprogs xz-utils zstd file \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/build-guest-image.sh /tmp/build-guest-image.sh
COPY src/backends/guest/lab-agent.sh /tmp/lab-agent.sh
RUN LAB_AGENT_SCRIPT=/tmp/lab-agent.sh bash /tmp/build-guest-image.sh /opt/lab-images/lab-tiny && rm /tmp/build-guest-image.sh /tmp/lab-agent.sh
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 GUEST_IMAGE_DIR=/opt/lab-images
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/public ./public
COPY package.json ./
COPY bin ./bin
COPY templates ./templates
COPY images ./images
USER node
EXPOSE 3000
HEALTHCHECK CMD node -e "fetch('http://127.0.0.1:3000/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/lab-orchestrator.js"]
CMD ["serve"]
