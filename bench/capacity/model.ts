/**
 * The capacity model: from per-message costs measured on this machine (DynamoDB units
 * and requests per message, item bytes, Redis CPU and memory per wake-up and per
 * subscription, gateway CPU per message and memory per connection) and a traffic shape
 * (users, messages per user per day, share online at peak, devices), what a deployment
 * needs. Pure arithmetic, no I/O: every input is named, every output says how it was
 * derived (docs/capacity.md prints both).
 */

export interface Traffic {
  users: number;
  messagesPerUserPerDay: number;
  /** Share of users with a connection at the peak hour. */
  onlineAtPeak: number;
  devicesPerUser: number;
  /** Peak hour's message rate over the day's average (an assumption, not a measurement). */
  peakToAverage: number;
  /** Mean time from a send to the last of the recipient's devices acking it (hours); sets how much is pending. */
  meanHoursToLastAck: number;
  /** Days an acked message stays stored until native TTL deletes it (the engine leaves acked messages to TTL instead of paying a delete); 0 if it deletes them. */
  ackedKeptDays: number;
  /** How long dedupe entries are kept (days): the retention. */
  dedupeDays: number;
}

export interface Prices {
  /** US$ per million write request units (on-demand). */
  perMillionWrite: number;
  /** US$ per million read request units (on-demand). */
  perMillionRead: number;
  /** US$ per GB-month of table storage (standard table class). */
  perGbMonth: number;
}

/** Per-message DynamoDB costs of one message's whole life, for one recipient device. */
export interface DynamoPerMessage {
  send: { write: number; read: number; requests: number };
  /** Reading the message, once per device. */
  read: { write: number; read: number; requests: number };
  /** Acking it, once per device (the delete on the last ack is counted once per device: an upper bound). */
  ack: { write: number; read: number; requests: number };
  /** Write units of one send that land on the global index (spread over the sweep shards' partition keys). */
  indexWritesPerSend: number;
}

/**
 * The sweeper: a pass walks every mailbox (users index + its meta item, eventually
 * consistent), whatever the traffic, so it costs per mailbox and pass, not per message.
 * Expired and acked items go by native TTL for free.
 */
export interface SweeperCosts {
  /** One pass over one mailbox with nothing counted, measured (bench:dynamodb-cost). */
  perMailboxPass: { write: number; read: number; requests: number };
  /** Passes a day (retention.sweepIntervalMs: 86,400,000 / interval). */
  passesPerDay: number;
}

export interface ItemBytes {
  /** Stored size of a message item (DynamoDB's item size rules, plus its 100-byte per-item overhead). */
  message: number;
  /** Of a dedupe entry, including its index copy. */
  dedupe: number;
  /** Of a user's meta item (cursors of 3 devices), including its index copy. */
  meta: number;
}

export interface GatewayCosts {
  /** CPU milliseconds on a gateway node per message, whole life (send, deliver to each device, acks). */
  cpuMsPerMessage: number;
  /** Where that figure comes from. */
  cpuSource: string;
  /** Resident memory per idle WebSocket connection (KiB). */
  kibPerConnection: number;
}

export interface RedisCosts {
  /** Redis server CPU microseconds per wake-up (SPUBLISH received by one subscribed node). */
  cpuUsPerWake: number;
  /** Redis memory per sharded subscription (bytes). */
  bytesPerSubscription: number;
}

export interface Sizing {
  /** A gateway node: cores and memory, and the share of each we plan to use. */
  nodeCores: number;
  nodeMemoryGiB: number;
  targetCpuUse: number;
  targetMemoryUse: number;
  /** A Redis shard (master): one core for commands; the share of it we plan to use, and its memory. */
  redisTargetCpuUse: number;
  redisMemoryGiB: number;
  /** DynamoDB: one partition takes at most this many write units a second (AWS's published limit)... */
  partitionWcu: number;
  /** ...and this many strongly consistent read units. */
  partitionRcu: number;
  /** ...and holds about this much data before it splits. */
  partitionGb: number;
  /** Index partition keys the sweeper's expiry entries are spread over (sweepShards). */
  sweepShards: number;
}

export interface Inputs {
  traffic: Traffic;
  prices: Prices;
  dynamo: DynamoPerMessage;
  sweeper: SweeperCosts;
  items: ItemBytes;
  gateway: GatewayCosts;
  redis: RedisCosts;
  sizing: Sizing;
}

export interface Outputs {
  messagesPerDay: number;
  averageMessagesPerSecond: number;
  peakMessagesPerSecond: number;
  onlineDevicesAtPeak: number;
  dynamo: {
    writeUnitsPerMessage: number;
    readUnitsPerMessage: number;
    requestsPerMessage: number;
    writeUnitsPerDay: number;
    readUnitsPerDay: number;
    /** The sweeper's passes, in the daily figures above (per mailbox and pass, not per message). */
    sweeper: { readUnitsPerDay: number; writeUnitsPerDay: number; dollarsPerDay: number };
    peakWriteUnitsPerSecond: number;
    peakReadUnitsPerSecond: number;
    dollarsPerDayWrites: number;
    dollarsPerDayReads: number;
    storageGb: { meta: number; pending: number; acked: number; dedupe: number; total: number };
    dollarsPerDayStorage: number;
    dollarsPerDay: number;
    dollarsPerMonth: number;
    /** Partitions needed for the peak throughput, and for the data. */
    partitionsForThroughput: number;
    partitionsForStorage: number;
    /** Peak write units a second on each sweep-shard partition key of the index, against the 1,000 limit. */
    indexWcuPerShardKey: number;
    sweepShardsNeeded: number;
  };
  gateway: {
    cpuCoresAtPeak: number;
    nodesForCpu: number;
    connectionsPerNodeByMemory: number;
    nodesForConnections: number;
    nodes: number;
    connectionsPerNode: number;
  };
  redis: {
    wakesPerSecondAtPeak: number;
    cpuCoresAtPeak: number;
    shardsForCpu: number;
    subscriptions: number;
    subscriptionMemoryGiB: number;
    shardsForMemory: number;
    shards: number;
  };
  hotMailbox: {
    /** Write units one message costs on the recipient's own partition. */
    writeUnitsOnUserPartition: number;
    /** Messages a second one user can receive before their partition throttles. */
    messagesPerSecond: number;
  };
}

const DAY = 86_400;
const GB = 1e9;
const GiB = 1024 ** 3;

export function capacity(i: Inputs): Outputs {
  const t = i.traffic;
  const d = i.dynamo;
  const messagesPerDay = t.users * t.messagesPerUserPerDay;
  const averageMessagesPerSecond = messagesPerDay / DAY;
  const peakMessagesPerSecond = averageMessagesPerSecond * t.peakToAverage;
  const onlineDevicesAtPeak = t.users * t.onlineAtPeak * t.devicesPerUser;

  // One message: sent once, read and acked once per device.
  const perDevice = (k: 'write' | 'read' | 'requests'): number => d.read[k] + d.ack[k];
  const writeUnitsPerMessage = d.send.write + t.devicesPerUser * perDevice('write');
  const readUnitsPerMessage = d.send.read + t.devicesPerUser * perDevice('read');
  const requestsPerMessage = d.send.requests + t.devicesPerUser * perDevice('requests');
  // The sweeper: every mailbox, every pass.
  const sweeperReadUnitsPerDay = t.users * i.sweeper.perMailboxPass.read * i.sweeper.passesPerDay;
  const sweeperWriteUnitsPerDay = t.users * i.sweeper.perMailboxPass.write * i.sweeper.passesPerDay;
  const sweeperDollarsPerDay = (sweeperReadUnitsPerDay / 1e6) * i.prices.perMillionRead + (sweeperWriteUnitsPerDay / 1e6) * i.prices.perMillionWrite;
  const writeUnitsPerDay = writeUnitsPerMessage * messagesPerDay + sweeperWriteUnitsPerDay;
  const readUnitsPerDay = readUnitsPerMessage * messagesPerDay + sweeperReadUnitsPerDay;
  const dollarsPerDayWrites = (writeUnitsPerDay / 1e6) * i.prices.perMillionWrite;
  const dollarsPerDayReads = (readUnitsPerDay / 1e6) * i.prices.perMillionRead;

  // Storage: every user's meta item; messages not yet acked by every device; acked messages until native TTL; dedupe entries for the retention.
  const meta = (t.users * i.items.meta) / GB;
  const pending = (messagesPerDay * (t.meanHoursToLastAck / 24) * i.items.message) / GB;
  const acked = (messagesPerDay * t.ackedKeptDays * i.items.message) / GB;
  const dedupe = (messagesPerDay * t.dedupeDays * i.items.dedupe) / GB;
  const storageTotal = meta + pending + acked + dedupe;
  const dollarsPerDayStorage = (storageTotal * i.prices.perGbMonth * 12) / 365;
  const dollarsPerDay = dollarsPerDayWrites + dollarsPerDayReads + dollarsPerDayStorage;

  // Sweeper passes are spread over the day.
  const peakWriteUnitsPerSecond = writeUnitsPerMessage * peakMessagesPerSecond + sweeperWriteUnitsPerDay / DAY;
  const peakReadUnitsPerSecond = readUnitsPerMessage * peakMessagesPerSecond + sweeperReadUnitsPerDay / DAY;
  const s = i.sizing;
  const partitionsForThroughput = Math.ceil(Math.max(peakWriteUnitsPerSecond / s.partitionWcu, peakReadUnitsPerSecond / s.partitionRcu));
  const partitionsForStorage = Math.ceil(storageTotal / s.partitionGb);
  const indexWcuPerShardKey = (d.indexWritesPerSend * peakMessagesPerSecond) / s.sweepShards;
  const sweepShardsNeeded = Math.ceil((d.indexWritesPerSend * peakMessagesPerSecond) / s.partitionWcu);

  // Gateway nodes: enough cores for the peak's messages, and enough memory for the peak's connections.
  const cpuCoresAtPeak = (i.gateway.cpuMsPerMessage / 1000) * peakMessagesPerSecond;
  const nodesForCpu = Math.ceil(cpuCoresAtPeak / (s.nodeCores * s.targetCpuUse));
  const connectionsPerNodeByMemory = Math.floor((s.nodeMemoryGiB * s.targetMemoryUse * GiB) / (i.gateway.kibPerConnection * 1024));
  const nodesForConnections = Math.ceil(onlineDevicesAtPeak / connectionsPerNodeByMemory);
  const nodes = Math.max(nodesForCpu, nodesForConnections);

  // Redis: one wake-up per stored message, to the shard owning the recipient's channel;
  // one subscription per (node, online user) - a user's devices are usually on one node.
  const wakesPerSecondAtPeak = peakMessagesPerSecond;
  const redisCores = (i.redis.cpuUsPerWake / 1e6) * wakesPerSecondAtPeak;
  const shardsForCpu = Math.ceil(redisCores / s.redisTargetCpuUse);
  const subscriptions = t.users * t.onlineAtPeak;
  const subscriptionMemoryGiB = (subscriptions * i.redis.bytesPerSubscription) / GiB;
  const shardsForMemory = Math.ceil(subscriptionMemoryGiB / (s.redisMemoryGiB * 0.5));
  const shards = Math.max(3, shardsForCpu, shardsForMemory);

  // Hot mailbox: everything of one user (meta, messages, dedupe entries) shares a partition key.
  const writeUnitsOnUserPartition = writeUnitsPerMessage - d.indexWritesPerSend;
  return {
    messagesPerDay,
    averageMessagesPerSecond,
    peakMessagesPerSecond,
    onlineDevicesAtPeak,
    dynamo: {
      writeUnitsPerMessage,
      readUnitsPerMessage,
      requestsPerMessage,
      writeUnitsPerDay,
      readUnitsPerDay,
      sweeper: { readUnitsPerDay: sweeperReadUnitsPerDay, writeUnitsPerDay: sweeperWriteUnitsPerDay, dollarsPerDay: sweeperDollarsPerDay },
      peakWriteUnitsPerSecond,
      peakReadUnitsPerSecond,
      dollarsPerDayWrites,
      dollarsPerDayReads,
      storageGb: { meta, pending, acked, dedupe, total: storageTotal },
      dollarsPerDayStorage,
      dollarsPerDay,
      dollarsPerMonth: (dollarsPerDay * 365) / 12,
      partitionsForThroughput,
      partitionsForStorage,
      indexWcuPerShardKey,
      sweepShardsNeeded,
    },
    gateway: {
      cpuCoresAtPeak,
      nodesForCpu,
      connectionsPerNodeByMemory,
      nodesForConnections,
      nodes,
      connectionsPerNode: Math.ceil(onlineDevicesAtPeak / nodes),
    },
    redis: { wakesPerSecondAtPeak, cpuCoresAtPeak: redisCores, shardsForCpu, subscriptions, subscriptionMemoryGiB, shardsForMemory, shards },
    hotMailbox: { writeUnitsOnUserPartition, messagesPerSecond: s.partitionWcu / writeUnitsOnUserPartition },
  };
}
