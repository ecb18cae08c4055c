/** Issue 9's targets for pobox against Redis lists with AOF `appendfsync always` (throughput ratios). */
export const VS_REDIS_TARGETS = { send: 1.5, fetch: 1, delete: 1 } as const;
