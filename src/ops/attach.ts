/**
 * Everything operators and first-time users get on top of the gateway, attached to one
 * server in one call from startServer: metrics (GET /metrics), delivery receipts, the
 * offline wake-up hook, and the demo page. Returns what it started, to close with the
 * server.
 */
import { resolveSecrets } from '../gateway/auth.js';
import type { ServerContext } from '../gateway/extension.js';
import { attachPostOffice, seedPending } from '../metrics/postoffice-metrics.js';
import type { PoboxMetrics } from '../metrics/metrics.js';
import { enableReceipts, RECEIPT_SENDER } from '../postoffice/receipts.js';
import { WakeupHook } from '../postoffice/wakeup-hook.js';
import { demoEnabled, registerDemoRoutes, webDir } from './demo-routes.js';
import { followGateway } from './gateway-metrics.js';
import { registerMetricsRoute } from './metrics-route.js';
import { registerAdminRoutes, registerExportRoutes } from './admin-routes.js';
import { LocalPresence } from './presence.js';
import type { RedisPresence } from './redis-presence.js';
import { checkBusSpec } from '../bus/open.js';
import { parseRedisBusOptions, parseRedisClusterBusOptions } from '../bus/redis-options.js';
import { BackgroundFailures } from './background-failures.js';

export interface OpsDeps extends Pick<ServerContext, 'config' | 'postOffice' | 'bus' | 'events' | 'router' | 'auth' | 'log'> {
  metrics: PoboxMetrics;
  /** Where background failures go (logged once per burst, counted); default: a reporter of its own. */
  failures?: BackgroundFailures;
}

export interface Ops {
  readonly presence: LocalPresence;
  readonly wakeupHook: WakeupHook | undefined;
  /** Set when the wake-up hook runs over the Redis bus. */
  readonly redisPresence: RedisPresence | undefined;
  readonly demo: boolean;
  close(): Promise<void>;
}

export async function attachOps(deps: OpsDeps): Promise<Ops> {
  const { config, postOffice: po, metrics, log } = deps;
  const stops: Array<() => void> = [];
  const failures = deps.failures ?? new BackgroundFailures(log, metrics);

  // Metrics. Seed the pending totals from the store before the server takes traffic,
  // only for the embedded engine (single node; a shared table would be counted by every node).
  const attached = attachPostOffice(po, metrics);
  stops.push(() => attached.detach());
  if (po.store.capabilities.embedded) {
    const seeded = await seedPending(po.store, metrics, attached, po.now());
    log.info({ users: seeded.users, pending: seeded.pending, complete: seeded.complete }, 'pending totals seeded from the store');
  }
  stops.push(followGateway(deps.events, metrics));
  const presence = new LocalPresence();
  stops.push(presence.follow(deps.events));
  metrics.setOnlineUsersProbe(() => presence.onlineUsers);
  stops.push(() => metrics.setOnlineUsersProbe(undefined));
  registerMetricsRoute(deps.router, deps.auth, metrics);
  registerAdminRoutes(deps.router, deps.auth, po);
  registerExportRoutes(deps.router, deps.auth, po);

  // Delivery receipts, from the reserved system sender.
  if (config.receipts) {
    stops.push(
      enableReceipts(po, {
        sender: RECEIPT_SENDER,
        onOutcome: (outcome, r, err) => {
          metrics.receipts.inc({ outcome });
          if (outcome === 'dropped') log.warn({ user: r.sender, recipient: r.to, device: r.device, code: err?.code }, 'delivery receipt dropped');
        },
      }),
    );
  }

  // The offline wake-up hook, when a webhook URL is configured. Receipts never wake anyone.
  let wakeupHook: WakeupHook | undefined;
  let redisPresence: RedisPresence | undefined;
  if (config.wakeupHook?.url) {
    const hookConfig = { ...config.wakeupHook, ignoreSenders: [...config.wakeupHook.ignoreSenders, RECEIPT_SENDER] };
    // With the Redis bus (several nodes), presence and the per-interval limit are kept in Redis.
    const busKind = checkBusSpec(config.bus);
    if (busKind !== 'memory') {
      // Loaded only here, so a single node never loads ioredis.
      const { RedisPresence } = await import('./redis-presence.js');
      const onFailure = (err: unknown): void => failures.report('presence', err);
      if (busKind === 'redis') {
        const bus = parseRedisBusOptions({ url: config.bus });
        redisPresence = new RedisPresence({ url: bus.connectionUrl, prefix: bus.prefix, onFailure });
      } else {
        const bus = parseRedisClusterBusOptions({ url: config.bus });
        redisPresence = new RedisPresence({ cluster: bus, prefix: bus.prefix, onFailure });
      }
      stops.push(redisPresence.follow(deps.events));
    }
    wakeupHook = new WakeupHook({
      config: hookConfig,
      presence: redisPresence ?? presence,
      ...(redisPresence ? { claim: (user: string, ms: number) => redisPresence!.claim(user, ms) } : {}),
      onOutcome: (user, outcome, d) => {
        metrics.wakeupHook.inc({ outcome });
        if (outcome === 'failed') failures.report('wakeup_hook', d?.error ?? 'failed', { user, attempts: d?.attempts });
        else if (outcome === 'dropped') log.warn({ user }, 'wake-up hook queue full; wake-up dropped');
      },
    });
    stops.push(wakeupHook.attach(po));
  }

  // The demo page.
  let demo = false;
  if (demoEnabled(config)) {
    const secret = resolveSecrets(config).secrets[0];
    const dir = webDir();
    if (!secret) log.warn('demo mode is off: it needs an HS256 secret to mint tokens');
    else if (!dir) log.warn('demo mode is off: the web/ directory was not found');
    else {
      registerDemoRoutes(deps.router, { postOffice: po, secret, config, dir });
      demo = true;
    }
  }

  return {
    presence,
    wakeupHook,
    redisPresence,
    demo,
    async close() {
      for (const stop of stops.splice(0).reverse()) stop();
      await wakeupHook?.close();
      await redisPresence?.close();
    },
  };
}
