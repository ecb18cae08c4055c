/** Types for `cluster-key-slot` (ioredis's own slot function, which ships no typings). */
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot (0-16383) of a key or sharded channel, honouring `{hash tags}`. */
  function calculateSlot(key: string | Buffer): number;
  export default calculateSlot;
}
