/**
 * @shared-infra/event-bus 2.x — hand-written type declarations.
 *
 * Every type of 1.0.0 with the same name and shape, plus what 2.x adds (marked "Added in 2.0").
 * A service that changes nothing but its dependency compiles under `tsc --strict`.
 */

// ============================================================================
// Core Event Interfaces
// ============================================================================

/** Base event interface for all events in the system. */
export interface Event<T = any> {
  id: string;
  type: EventType | string;
  data: T;
  metadata: EventMetadata;
}

/** Metadata attached to every event. */
export interface EventMetadata {
  source: string;
  timestamp: string;
  traceId?: string;
  userId?: string;
  correlationId?: string;
  version?: string;
}

/** Channel-specific event wrapper. */
export interface ChannelEvent extends Event {
  channel: string;
}

/**
 * What a handler receives (Added in 2.0: the 1.0.0 handler got an `Event`; this is a
 * superset): the event plus the channel it was published on and, for pattern subscriptions,
 * the pattern it matched.
 */
export interface DeliveredEvent<T = any> extends Event<T> {
  channel: string;
  pattern?: string;
  /** Added in 2.0: how a durable subscription got it (absent for other subscriptions). */
  delivery?: DeliveryInfo;
}

/** Added in 2.0: the stream entry a durable subscription's handler runs for. */
export interface DeliveryInfo {
  /** Deliveries of this entry to the group so far (1 on the first; more after a reclaim). */
  attempt: number;
  /** The entry's id in the type's stream (`<ms>-<seq>`). */
  streamId: string;
  /** The consumer group. */
  group: string;
}

// ============================================================================
// Event Types for Photo Management
// ============================================================================

export type EventType =
  | 'photo.uploaded'
  | 'photo.processing.started'
  | 'photo.processing.progress'
  | 'photo.processing.stage.completed'
  | 'photo.processing.completed'
  | 'photo.processing.failed'
  | 'batch.processing.started'
  | 'batch.processing.completed'
  | 'batch.processing.failed'
  | 'user.registered'
  | 'user.updated'
  | 'system.health.update'
  | 'system.maintenance'
  | 'notification.new';

export interface PhotoUploadedEvent extends Event<PhotoUploadedData> {
  type: 'photo.uploaded';
}

export interface PhotoUploadedData {
  photoId: string;
  userId: string;
  filename: string;
  size: number;
  mimeType: string;
  uploadedAt: string;
}

export interface PhotoProcessingStartedEvent extends Event<PhotoProcessingStartedData> {
  type: 'photo.processing.started';
}

export interface PhotoProcessingStartedData {
  photoId: string;
  userId: string;
  jobId: string;
  startedAt: string;
  estimatedDuration?: number;
}

export interface PhotoProcessingProgressEvent extends Event<PhotoProcessingProgressData> {
  type: 'photo.processing.progress';
}

export interface PhotoProcessingProgressData {
  photoId: string;
  userId: string;
  jobId: string;
  progress: number;
  stage: string;
  currentStep?: string;
  estimatedCompletion?: string;
}

export interface PhotoProcessingStageCompletedEvent extends Event<PhotoProcessingStageData> {
  type: 'photo.processing.stage.completed';
}

export interface PhotoProcessingStageData {
  photoId: string;
  userId: string;
  jobId: string;
  stage: string;
  completedAt: string;
  duration: number;
  nextStage?: string;
}

export interface PhotoProcessingCompletedEvent extends Event<PhotoProcessingCompletedData> {
  type: 'photo.processing.completed';
}

export interface PhotoProcessingCompletedData {
  photoId: string;
  userId: string;
  jobId: string;
  completedAt: string;
  duration: number;
  thumbnails: ThumbnailInfo[];
  metadata: PhotoMetadata;
  storageInfo: StorageInfo;
}

export interface ThumbnailInfo {
  size: string;
  width: number;
  height: number;
  url: string;
  path: string;
}

export interface PhotoMetadata {
  width: number;
  height: number;
  format: string;
  colorSpace?: string;
  hasAlpha?: boolean;
  exif?: Record<string, any>;
}

export interface StorageInfo {
  bucket: string;
  key: string;
  size: number;
  contentType: string;
}

export interface PhotoProcessingFailedEvent extends Event<PhotoProcessingFailedData> {
  type: 'photo.processing.failed';
}

export interface PhotoProcessingFailedData {
  photoId: string;
  userId: string;
  jobId: string;
  failedAt: string;
  error: ErrorInfo;
  retryable: boolean;
  retryCount?: number;
}

export interface ErrorInfo {
  code: string;
  message: string;
  details?: Record<string, any>;
  stack?: string;
}

// ============================================================================
// Event Bus Configuration
// ============================================================================

export interface EventBusConfig {
  serviceName: string;
  serviceVersion?: string;
  /** Accepted and ignored (server mode is not part of this package). */
  server?: ServerConfig;
  /**
   * The platform's Socket.IO hub, for rooms (joinRoom / leaveRoom / getRoomMembers) and the
   * events the hub forwards. With it, connect() also opens the hub connection; without it the
   * room methods reject with `Socket.IO not connected`, as in 1.0.0.
   */
  client?: ClientConfig;
  redis: RedisConfig;
  /** Only `transports` applies (to the hub connection of `client`); the rest is accepted and ignored. */
  websocket?: WebSocketConfig;
  /** Accepted and ignored. */
  security?: SecurityConfig;
  performance?: PerformanceConfig;
  /** Accepted and ignored. */
  monitoring?: MonitoringConfig;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Added in 2.0: `text` (default, the 1.0.0 line format) or `json` lines. */
  logFormat?: 'text' | 'json';
  /** Added in 2.0: `memory` runs on an in-process broker (unit tests, no Redis). */
  transport?: 'redis' | 'memory';
  /** Added in 2.0: validation limits. */
  validation?: ValidationConfig;
  /** Added in 2.0: how long disconnect() waits for running handlers (ms, default 5000). */
  disconnectTimeout?: number;
}

export interface ServerConfig {
  port: number;
  host?: string;
  cors?: CorsConfig;
  path?: string;
}

/**
 * The Socket.IO hub connection (Engine.IO v4 / Socket.IO v5, the protocol of socket.io 4),
 * authenticated with `auth: {token: authToken, serviceName}`.
 *
 * - A hub that refuses the token makes connect() reject with `CONNECTION_ERROR`
 *   `Socket.IO connection rejected by the hub: <the hub's message>` (Redis is closed again).
 * - A hub that cannot be reached: connect() still resolves (Redis works), healthCheck() is
 *   `degraded`, room calls reject with `Socket.IO not connected`, and the client keeps trying
 *   in the background; with `reconnection: false` connect() rejects with `CONNECTION_ERROR`.
 * - A lost connection is retried with backoff (state events on connection `socketio`); after
 *   each reconnect every room is rejoined and every subscription announced again.
 */
export interface ClientConfig {
  /** `http://`, `https://`, `ws://` or `wss://` URL of the hub (a path after the port is the namespace). */
  url: string;
  /** Sent as `auth.token` in the Socket.IO handshake. */
  authToken?: string;
  /** Reconnect after a lost or failed connection (default true). */
  reconnection?: boolean;
  /** First reconnect delay (ms, default 1000), doubled per attempt, with jitter. */
  reconnectionDelay?: number;
  /** Reconnect delay cap (ms, default 5000). */
  reconnectionDelayMax?: number;
  /** Attempts after a loss before giving up (default unlimited). */
  reconnectionAttempts?: number;
  /** Connect timeout and how long a room call waits for the hub's ack (ms, default 20000; `TIMEOUT` after). */
  timeout?: number;
}

/**
 * Redis configuration. 1.0.0 required `host` and `port`; they are still accepted, and 2.0 also
 * takes `url` instead (`redis://`, `rediss://`, `memory://name`), so both are optional here.
 */
export interface RedisConfig {
  host?: string;
  port?: number;
  password?: string;
  db?: number;
  /** Accepted; as in 1.0.0 it never applies to pub/sub channels. */
  keyPrefix?: string;
  /** Accepted and ignored (ioredis option). */
  maxRetriesPerRequest?: number;
  /** Accepted and ignored (ioredis option). */
  enableReadyCheck?: boolean;
  /** Accepted and ignored (ioredis option). */
  retryDelayOnFailover?: number;
  /** Added in 2.0. */
  url?: string;
  /** Added in 2.0: ACL user. */
  username?: string;
  /**
   * Added in 2.0: connect with TLS. `true` verifies the server against the default roots
   * (Mozilla's); an object takes these ioredis (Node `tls`) options:
   * - `ca`: PEM text of the CA certificate(s) to trust: a string or a `Buffer`
   *   (`fs.readFileSync(path)`), or an array of them; as in Node it replaces the default roots
   *   (a private CA with verification on).
   * - `rejectUnauthorized`: `false` turns certificate verification off (tests only).
   *
   * Other options (`cert`/`key` client certificates, `servername`, ...) throw a
   * `NOT_SUPPORTED` error instead of being ignored. A `rediss://` url needs no `tls`; with
   * a `redis://` url, setting `tls` connects with TLS, as in ioredis.
   */
  tls?: boolean | { ca?: string | Uint8Array | Array<string | Uint8Array>; rejectUnauthorized?: boolean };
  /** Added in 2.0 (ms, default 10000). */
  connectTimeout?: number;
  /** Added in 2.0: a publish not sent after this long fails (ms, default 5000). */
  publishTimeout?: number;
  /** Added in 2.0: publishes waiting while disconnected (default 10000). */
  offlineQueueSize?: number;
  /** Added in 2.0: a connection idle this long is PINGed; no answer within the same time (at most 5 s) replaces it (ms, default 5000; 0 = off). */
  heartbeatInterval?: number;
  /** Added in 2.0: first reconnect delay (ms, default 100). */
  reconnectDelay?: number;
  /** Added in 2.0: reconnect delay cap (ms, default 5000). */
  reconnectDelayMax?: number;
}

/** Added in 2.0. */
export interface ValidationConfig {
  maxEventSize?: number;
  maxDataSize?: number;
  /** Check the predefined photo events' data shapes before publishing. */
  strictSchemas?: boolean;
}

export interface WebSocketConfig {
  /**
   * Transports of the hub connection (`client`), tried in this order. Default: WebSocket, then
   * HTTP long-polling as the fallback.
   */
  transports?: ('websocket' | 'polling')[];
  /** Accepted and ignored (a server option: the hub's ping settings apply). */
  pingTimeout?: number;
  /** Accepted and ignored (a server option: the hub's ping settings apply). */
  pingInterval?: number;
  /** Accepted and ignored (server option). */
  maxHttpBufferSize?: number;
  /** Accepted and ignored (server option; see `client.timeout`). */
  connectTimeout?: number;
  /** Accepted and ignored (server option). */
  serveClient?: boolean;
}

export interface CorsConfig {
  origin: string | string[] | boolean;
  credentials?: boolean;
  methods?: string[];
  allowedHeaders?: string[];
}

export interface SecurityConfig {
  enableAuth?: boolean;
  tokenValidator?: TokenValidator;
  rateLimiting?: RateLimitConfig;
  allowedOrigins?: string[];
}

export type TokenValidator = (token: string) => Promise<AuthenticatedUser | null>;

export interface RateLimitConfig {
  windowMs: number;
  maxRequests: number;
  keyGenerator?: (socket: any) => string;
}

export interface AuthenticatedUser {
  id: string;
  email?: string;
  roles?: string[];
  permissions?: string[];
}

export interface PerformanceConfig {
  batchSize?: number;
  batchInterval?: number;
  maxRetries?: number;
  retryDelay?: number;
  enableCompression?: boolean;
}

export interface MonitoringConfig {
  enableMetrics?: boolean;
  enableTracing?: boolean;
  metricsPort?: number;
  healthCheckInterval?: number;
}

// ============================================================================
// Subscription Management
// ============================================================================

export interface Subscription {
  id: string;
  pattern: string;
  /** Added in 2.0: the event types of a durable subscription made with an array. */
  types?: string[];
  handler: EventHandler;
  filter?: SubscriptionFilter;
  options?: SubscriptionOptions;
  createdAt: Date;
  active: boolean;
}

/**
 * Added in 2.0: the second argument every handler gets (a 1.0.0 handler that takes one
 * argument works unchanged). `signal` is aborted (reason: a `DOMException` named
 * `TimeoutError`) when the client stops waiting for this run because the subscription's
 * `timeout` passed. The client cannot stop JavaScript;
 * a handler that should stop early passes `signal` on (`fetch(url, { signal })`) or checks
 * `signal.aborted`. A run that finishes after that counts in `getStats().handlersLateCompleted`.
 */
export interface HandlerContext {
  readonly signal: AbortSignal;
}

export type EventHandler<T = any> = (event: Event<T>, context?: HandlerContext) => Promise<void> | void;

export interface SubscriptionOptions {
  /** Accepted; no effect. */
  priority?: number;
  retryOnError?: boolean;
  /** Retries after the first attempt (default 3). */
  maxRetries?: number;
  /**
   * Handler timeout in ms (default 30000). A timed-out handler is not stopped (JavaScript
   * cannot be), but its `context.signal` is aborted; if it finishes anyway it counts in
   * `getStats().handlersLateCompleted`.
   */
  timeout?: number;
  /** Free-form; a `filter` inside it is honoured (as the 1.0.0 hub protocol sent it). */
  metadata?: Record<string, any>;
  /** Added in 2.0: first retry delay (ms, default 1000), doubled per retry. */
  retryDelay?: number;
  /** Added in 2.0: retry delay cap (ms, default 10000). */
  maxRetryDelay?: number;
  /** Added in 2.0 (declared but never applied in 1.0.0): only matching events are handled. */
  filter?: SubscriptionFilter;
  /** Added in 2.0: handler runs in flight at once (default 1 = in order). */
  concurrency?: number;
  /** Added in 2.0: queued events per subscription before dropping (default 10000). */
  maxPending?: number;
  /**
   * Added in 2.0: read the event type's stream (events published with `persistent: true`) as
   * a member of a consumer group instead of listening to the channel. The subscription's
   * target is then one exact event type or an array of them (not a glob).
   */
  durable?: DurableOptions;
}

/** Added in 2.0: a durable subscription's consumer group membership. */
export interface DurableOptions {
  /** The consumer group (required). Each group gets every event; its members share them. */
  group: string;
  /** This member's name in the group (default `<serviceName>-<hostname>`). */
  consumer?: string;
  /** Deliveries after which a failing event goes to the dead letters (default 5). */
  maxDeliveries?: number;
  /** ms an entry stays pending at another member before it is claimed (default 30000). */
  minIdleTime?: number;
  /** ms between claim rounds (default 5000). */
  claimInterval?: number;
  /** Where a new group starts: `new` events only (default) or `all` the stream holds. */
  startFrom?: 'new' | 'all';
  /** Entries per read (default 10). */
  count?: number;
  /** Skip an event id the group already handled (default false). */
  idempotent?: boolean;
  /** ms an event id is remembered for `idempotent` (default 24 h). */
  idempotentTtl?: number;
  /** ms a read waits for new entries (default 2000). */
  block?: number;
}

/** Added in 2.0: an event a durable group gave up on (`deadLetters()`). */
export interface DeadLetter<T = any> {
  /** The event as it was published. */
  event: Event<T>;
  /** The last failure. */
  error: { message: string; code?: string };
  /** Deliveries it had. */
  deliveries: number;
  /** When it was dead-lettered (ms since the epoch). */
  failedAt: number;
  /** Its id in the dead-letter stream. */
  streamId: string;
  /** Its id in the type's stream. */
  originalId: string;
}

/** Added in 2.0: which group's dead letters (`count`: at most that many, oldest first). */
export interface DeadLetterOptions {
  group: string;
  count?: number;
}

export interface SubscriptionFilter {
  conditions: FilterCondition[];
  operator?: 'AND' | 'OR';
}

export interface FilterCondition {
  field: string;
  operator: 'equals' | 'notEquals' | 'contains' | 'notContains' | 'greaterThan' | 'lessThan' | 'in' | 'notIn';
  value: any;
}

export interface SubscriptionStats {
  totalSubscriptions: number;
  activeSubscriptions: number;
  eventsByType: Record<string, number>;
  errorRate: number;
  averageProcessingTime: number;
}

// ============================================================================
// Event Publishing
// ============================================================================

export interface PublishOptions {
  traceId?: string;
  correlationId?: string;
  /** Accepted; no effect. */
  priority?: number;
  /**
   * With `persistent`: ms the event is kept in its type's stream (entries older than that
   * are trimmed); a positive number.
   */
  ttl?: number;
  /**
   * Also append the event to its type's stream (for durable subscriptions); success means
   * the stream has it. Plain subscribers still get it live.
   */
  persistent?: boolean;
  room?: string;
  userId?: string;
  broadcast?: boolean;
  /** Extra metadata fields, written after `version` (2.0; 1.0.0 dropped them). */
  metadata?: Record<string, any>;
}

export interface PublishResult {
  success: boolean;
  eventId: string;
  publishedAt: string;
  /** Redis's PUBLISH reply: clients that received it (filled since 2.0). */
  deliveredTo?: number;
  error?: ErrorInfo;
}

/** Added in 2.0: one item of publishBatch(). */
export interface BatchEvent<T = any> {
  type: EventType | string;
  data: T;
  options?: PublishOptions;
}

// ============================================================================
// Room Management
// ============================================================================

export interface RoomInfo {
  name: string;
  memberCount: number;
  createdAt: Date;
  metadata?: Record<string, any>;
}

export interface ClientInfo {
  id: string;
  userId?: string;
  rooms: string[];
  connectedAt: Date;
  lastActivity: Date;
  metadata?: Record<string, any>;
}

// ============================================================================
// Health Check & Monitoring
// ============================================================================

export interface HealthCheckResult {
  /** `degraded` when Redis is up but the Socket.IO hub (`client` config) is not. */
  status: 'healthy' | 'degraded' | 'unhealthy';
  timestamp: string;
  /** `redis` always; `socketio` (Added in 2.0) when the config has `client`. */
  checks: Record<string, CheckResult> & { socketio?: SocketIoCheckResult };
  uptime: number;
  version?: string;
}

export interface CheckResult {
  status: 'pass' | 'warn' | 'fail';
  message?: string;
  duration?: number;
  details?: Record<string, any>;
}

/** Added in 2.0: `healthCheck().checks.socketio`, the hub connection of the `client` config. */
export interface SocketIoCheckResult extends CheckResult {
  /** `pass` while the hub connection is up, else `fail` (never `warn`). */
  status: 'pass' | 'warn' | 'fail';
  details?: SocketIoCheckDetails;
}

/** Added in 2.0. */
export interface SocketIoCheckDetails {
  /** `client.url`. */
  url: string;
  /** The transport in use; null while not connected. */
  transport: 'websocket' | 'polling' | null;
  /** Rooms joined through this client (rejoined after every reconnect). */
  rooms: string[];
  /** Reconnects of the hub connection so far. */
  reconnects: number;
  [key: string]: any;
}

export interface EventBusStats {
  /** Open connections: publisher and subscriber, plus the Socket.IO hub when `client` is set. */
  activeConnections: number;
  totalConnections: number;
  eventsPublished: number;
  eventsReceived: number;
  eventsDelivered: number;
  /**
   * Failed publishes, handler failures (after retries) and invalid messages, as the core
   * counted them; a publish refused before it reached the core (data JSON cannot carry, a
   * type that is not a string) is not among them.
   */
  eventsFailed: number;
  activeSubscriptions: number;
  totalSubscriptions: number;
  /** Rooms joined through joinRoom (and not left). */
  activeRooms: number;
  averageLatency: number;
  messagesPerSecond: number;
  errorRate: number;
  lastError?: ErrorInfo;
  memoryUsage?: MemoryUsage;
  uptime: number;
  /** Added in 2.0. */
  p95Latency?: number;
  /** Added in 2.0. */
  p99Latency?: number;
  /** Added in 2.0: events dropped because a subscription's queue was full. */
  eventsDropped?: number;
  /** Added in 2.0: received messages that were not valid events. */
  invalidMessages?: number;
  /** Added in 2.0. */
  reconnects?: number;
  /** Added in 2.0: events skipped by subscription filters. */
  eventsFiltered?: number;
  /**
   * Added in 2.0: failovers followed (a master switch announced by the sentinels, or a
   * cluster connection moved to another node because its node failed).
   */
  failovers?: number;
  /** Added in 2.0: sharded pub/sub publishes resent after MOVED/ASK and channels resubscribed after a slot move. */
  redirects?: number;
  /** Added in 2.0: where the client is connected (absent before `connect()`). */
  topology?: TopologyStats;
  /**
   * Added in 2.0: latency distributions over every event since start (HDR histograms), in ms.
   * `averageLatency`, `p95Latency` and `p99Latency` are `latency.delivery`'s mean, p95, p99.
   */
  latency?: LatencyStats;
  /** Added in 2.0: events moved to a dead-letter stream by this client's durable subscriptions. */
  eventsDeadLettered?: number;
  /** Added in 2.0: pending entries this client claimed from other group members. */
  eventsReclaimed?: number;
  /** Added in 2.0: stream entries trimmed before a group of this client read them. */
  eventsTrimmedUnread?: number;
  /**
   * Added in 2.0: handler runs that finished after the client stopped waiting for them (their
   * timeout passed, or disconnect() gave up on them), each counted once.
   */
  handlersLateCompleted?: number;
  /** Added in 2.0: events published with `persistent: true` that reached their stream. */
  persistentPublished?: number;
  /** Added in 2.0: one entry per durable subscription. */
  durable?: DurableSubscriptionStats[];
}

/** Added in 2.0: `getStats().durable[i]`. */
export interface DurableSubscriptionStats {
  id: string;
  group: string;
  consumer: string;
  types: string[];
  /** Entries delivered to the group and not acknowledged yet (XINFO GROUPS). */
  pending: number;
  /** Entries not delivered to the group yet; null when Redis cannot tell. */
  lag: number | null;
  deadLettered: number;
  reclaimed: number;
}

/** Added in 2.0: one latency distribution of `getStats().latency`, in milliseconds. */
export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Added in 2.0: `getStats().latency`. */
export interface LatencyStats {
  /** Publish round trip: event encoded to Redis's answer. */
  publish: LatencySummary;
  /** Publish-to-handler: the event's `metadata.timestamp` to its handler's start (includes clock skew between hosts). */
  delivery: LatencySummary;
  /** One handler call. */
  handler: LatencySummary;
}

/** Added in 2.0: `getStats().topology`. */
export interface TopologyStats {
  mode: 'single' | 'sentinel' | 'cluster' | 'cluster-sharded' | 'memory';
  /** Every server known (`host:port`): the server, the sentinels and the master, or the cluster's masters and seeds. */
  nodes: string[];
  /** The master(s): the server, the one the sentinels name, or the cluster's, by slot. */
  masters: string[];
  /** The node(s) each connection uses now (sharded pub/sub: one per master it needs). */
  connections: { publisher: string[]; subscriber: string[] };
}

export interface MemoryUsage {
  heapUsed: number;
  heapTotal: number;
  external: number;
  rss: number;
}

export interface MetricsSnapshot {
  timestamp: string;
  connections: ConnectionMetrics;
  events: EventMetrics;
  subscriptions: SubscriptionMetrics;
  performance: PerformanceMetrics;
  errors: ErrorMetrics;
}

export interface ConnectionMetrics {
  active: number;
  total: number;
  connected: number;
  disconnected: number;
}

export interface EventMetrics {
  published: number;
  received: number;
  delivered: number;
  failed: number;
  byType: Record<string, number>;
}

export interface SubscriptionMetrics {
  active: number;
  total: number;
  byPattern: Record<string, number>;
}

export interface PerformanceMetrics {
  averageLatency: number;
  p95Latency: number;
  p99Latency: number;
  throughput: number;
}

export interface ErrorMetrics {
  total: number;
  rate: number;
  byType: Record<string, number>;
  recent: ErrorInfo[];
}

// ============================================================================
// Event Routing & Filtering
// ============================================================================

export interface RoutingRule {
  id: string;
  pattern: string;
  condition?: FilterCondition;
  targets: RoutingTarget[];
  priority?: number;
  enabled: boolean;
}

export interface RoutingTarget {
  type: 'room' | 'user' | 'channel' | 'broadcast';
  value: string;
  transform?: EventTransform;
}

export interface EventTransform {
  include?: string[];
  exclude?: string[];
  rename?: Record<string, string>;
  addFields?: Record<string, any>;
}

export interface EventFilter {
  id: string;
  pattern: string;
  conditions: FilterCondition[];
  action: FilterAction;
  priority?: number;
}

export interface FilterAction {
  type: 'allow' | 'deny' | 'transform' | 'throttle';
  transform?: EventTransform;
  throttle?: ThrottleParams;
}

export interface ThrottleParams {
  maxEvents: number;
  windowMs: number;
  key?: string;
}

// ============================================================================
// Error Handling
// ============================================================================

export type ErrorCategory =
  | 'connection'
  | 'authentication'
  | 'validation'
  | 'timeout'
  | 'rate_limit'
  | 'internal'
  | 'unknown';

export interface RetryConfig {
  maxRetries: number;
  initialDelay: number;
  maxDelay: number;
  backoffMultiplier: number;
  retryableErrors?: ErrorCategory[];
}

export type CircuitBreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerConfig {
  failureThreshold: number;
  successThreshold: number;
  timeout: number;
  resetTimeout: number;
}

// ============================================================================
// Event Bus Client & Server Interfaces
// ============================================================================

export interface IEventBusService {
  publish(eventType: string, data: any, options?: PublishOptions): Promise<PublishResult>;
  publishToRoom(room: string, eventType: string, data: any, options?: PublishOptions): Promise<PublishResult>;
  publishToUser(userId: string, eventType: string, data: any, options?: PublishOptions): Promise<PublishResult>;
  broadcast(eventType: string, data: any, options?: PublishOptions): Promise<PublishResult>;
  subscribe(pattern: string, handler: EventHandler, options?: SubscriptionOptions): Promise<Subscription>;
  unsubscribe(subscriptionId: string): Promise<boolean>;
  joinRoom(room: string): Promise<void>;
  leaveRoom(room: string): Promise<void>;
  getRoomMembers(room: string): Promise<string[]>;
  healthCheck(): Promise<HealthCheckResult>;
  getStats(): Promise<EventBusStats>;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  isConnected(): boolean;
}

export interface IEventBusServer {
  start(): Promise<void>;
  stop(): Promise<void>;
  getStats(): Promise<EventBusStats>;
  healthCheck(): Promise<HealthCheckResult>;
}

// ============================================================================
// WebSocket Specific Types
// ============================================================================

export declare const SocketEvents: {
  readonly CONNECT: 'connect';
  readonly DISCONNECT: 'disconnect';
  readonly ERROR: 'error';
  readonly IDENTIFY: 'identify';
  readonly SUBSCRIBE: 'subscribe';
  readonly UNSUBSCRIBE: 'unsubscribe';
  readonly EVENT: 'event';
  readonly JOIN_ROOM: 'join_room';
  readonly LEAVE_ROOM: 'leave_room';
  readonly PING: 'ping';
  readonly PONG: 'pong';
};

export interface SocketMessage {
  type: string;
  data: any;
  timestamp: string;
  messageId?: string;
}

export interface IdentifyMessage {
  userId: string;
  token?: string;
  metadata?: Record<string, any>;
}

export interface SubscribeMessage {
  pattern: string;
  filter?: SubscriptionFilter;
  options?: SubscriptionOptions;
}

export interface UnsubscribeMessage {
  subscriptionId: string;
}

export interface JoinRoomMessage {
  room: string;
}

export interface LeaveRoomMessage {
  room: string;
}

// ============================================================================
// Connection state events (Added in 2.0)
// ============================================================================

/** The Redis publisher and subscriber connections, and `socketio`: the hub of the `client` config. */
export type ConnectionName = 'publisher' | 'subscriber' | 'socketio';

export interface ConnectedEvent {
  type: 'connected';
  connection: ConnectionName;
  /** True after a reconnect. */
  reconnect: boolean;
}

export interface DisconnectedEvent {
  type: 'disconnected';
  connection: ConnectionName;
  reason: string;
}

export interface ReconnectingEvent {
  type: 'reconnecting';
  connection: ConnectionName;
  /** 1-based attempt number. */
  attempt: number;
  /** Delay before this attempt, ms. */
  delay: number;
}

/** Events may have been missed between `from` and `to` (pub/sub is at-most-once). */
export interface GapEvent {
  type: 'gap';
  from: string;
  to: string;
  duration: number;
}

/**
 * The `error` event's value: an Error with the connection it is about. Emitted for failures the
 * library retries on its own, such as a failed reconnect (the first failure of an outage, a
 * change of cause, then at most once a minute while it lasts; the `reconnecting` events count
 * every attempt).
 */
export interface ConnectionError extends Error {
  code: string;
  connection: ConnectionName;
}

export interface EventBusClientEvents {
  connected: (event: ConnectedEvent) => void;
  disconnected: (event: DisconnectedEvent) => void;
  reconnecting: (event: ReconnectingEvent) => void;
  gap: (event: GapEvent) => void;
  error: (error: ConnectionError) => void;
}

// ============================================================================
// Classes and functions
// ============================================================================

/**
 * The Event Bus client (Node EventEmitter for connection state events).
 *
 * A connected client keeps the Node process alive (like an open ioredis connection);
 * after `disconnect()`, or if `connect()` was never called, it does not.
 */
export declare class EventBusClient implements IEventBusService {
  /** Throws `serviceName is required in EventBusConfig` / `redis configuration is required in EventBusConfig`. */
  constructor(config: EventBusConfig);

  connect(): Promise<void>;
  /**
   * Idempotent; waits for running handlers up to `disconnectTimeout`. Called by one of this
   * client's handlers while it runs (before its first await; on Node >= 24 after its awaits
   * too), it does not wait for handlers (that one could not finish first): queued events are
   * dropped.
   */
  disconnect(): Promise<void>;
  isConnected(): boolean;

  /** Rejects with `Not connected to Event Bus` before connect(); other failures resolve `{success: false, error}`. */
  publish<T = any>(eventType: EventType | string, data: T, options?: PublishOptions): Promise<PublishResult>;
  publishToRoom<T = any>(room: string, eventType: EventType | string, data: T, options?: PublishOptions): Promise<PublishResult>;
  publishToUser<T = any>(userId: string, eventType: EventType | string, data: T, options?: PublishOptions): Promise<PublishResult>;
  broadcast<T = any>(eventType: EventType | string, data: T, options?: PublishOptions): Promise<PublishResult>;
  /** Added in 2.0: validate each, send the valid ones pipelined and in order; one result per item. */
  publishBatch(events: BatchEvent[]): Promise<PublishResult[]>;

  /**
   * `pattern`: a Redis glob; with `options.durable`, one exact event type or (Added in 2.0) an
   * array of them.
   */
  subscribe<T = any>(
    pattern: string | string[],
    handler: (event: DeliveredEvent<T>, context?: HandlerContext) => Promise<void> | void,
    options?: SubscriptionOptions
  ): Promise<Subscription>;
  unsubscribe(subscriptionId: string): Promise<boolean>;

  /** Added in 2.0: the group's dead letters of `eventType`, oldest first. */
  deadLetters<T = any>(eventType: EventType | string, options: DeadLetterOptions): Promise<DeadLetter<T>[]>;
  /** Added in 2.0: put the group's dead letters back on the stream (the group gets each again); resolves to how many. */
  replayDeadLetters(eventType: EventType | string, options: DeadLetterOptions): Promise<number>;
  /** Added in 2.0: delete the group's dead letters of `eventType`; resolves to how many. */
  purgeDeadLetters(eventType: EventType | string, options: { group: string }): Promise<number>;

  /**
   * Join a room on the Socket.IO hub (`client` config); resolves once the hub acknowledged it.
   * The room is rejoined after every reconnect, and events the hub sends to it reach the
   * subscriptions whose pattern matches the event's type. Rejects with `CONNECTION_ERROR`
   * `Socket.IO not connected` without `client` config, after disconnect() or while the hub is
   * unreachable; a `ValidationError` for an empty or non-string room name; `PROTOCOL_ERROR`
   * when the hub refuses; `TIMEOUT` after `client.timeout` without an answer.
   */
  joinRoom(room: string): Promise<void>;
  /** Leave a room on the hub (acknowledged); it is no longer rejoined. Rejects as joinRoom. */
  leaveRoom(room: string): Promise<void>;
  /**
   * The room's members as the hub reports them (the platform's hub: the serviceName of each
   * socket in the room). Rejects as joinRoom.
   */
  getRoomMembers(room: string): Promise<string[]>;

  healthCheck(): Promise<HealthCheckResult>;
  getStats(): Promise<EventBusStats>;
  /**
   * Added in 2.0: this client's counters, gauges and latency histograms as Prometheus text
   * exposition (version 0.0.4), labelled `service`, `transport` and, per subscription,
   * `subscription` and `pattern`. Serve it as is (e.g. from an HTTP handler, or merged after
   * `prom-client`'s `register.metrics()`); see docs/metrics.md.
   */
  metrics(): string;

  on<E extends keyof EventBusClientEvents>(event: E, listener: EventBusClientEvents[E]): this;
  once<E extends keyof EventBusClientEvents>(event: E, listener: EventBusClientEvents[E]): this;
  off<E extends keyof EventBusClientEvents>(event: E, listener: EventBusClientEvents[E]): this;
  addListener<E extends keyof EventBusClientEvents>(event: E, listener: EventBusClientEvents[E]): this;
  removeListener<E extends keyof EventBusClientEvents>(event: E, listener: EventBusClientEvents[E]): this;
  removeAllListeners(event?: keyof EventBusClientEvents): this;
  listenerCount(event: keyof EventBusClientEvents): number;
}

export default EventBusClient;

/** Create an Event Bus client with configuration. */
export declare function createEventBusClient(config: EventBusConfig): EventBusClient;

/** Added in 2.0: Redis glob matching (`*`, `?`, `[...]`, `[^...]`, `\`), exactly as the server. */
export declare function matchesPattern(pattern: string, channel: string): boolean;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
/** Added in 2.0: runtime values of LogLevel. */
export declare const LogLevel: {
  readonly DEBUG: 'debug';
  readonly INFO: 'info';
  readonly WARN: 'warn';
  readonly ERROR: 'error';
};

export declare class Logger {
  constructor(level?: LogLevel, serviceName?: string);
  debug(message: string, ...args: any[]): void;
  info(message: string, ...args: any[]): void;
  warn(message: string, ...args: any[]): void;
  error(message: string, error?: any, ...args: any[]): void;
  setLevel(level: LogLevel): void;
  getLevel(): LogLevel;
}

export declare class EventValidator {
  constructor(maxEventSize?: number, maxDataSize?: number);
  validateEvent(event: Event): void;
  validateEventType(eventType: string): void;
  validateMetadata(metadata: EventMetadata): void;
  validateTimestamp(timestamp: string): void;
  validateId(id: string, fieldName: string): void;
  validateEventSize(event: Event): void;
  validateDataSize(data: any): void;
  validateEventData(eventType: string, data: any): void;
  setMaxEventSize(maxEventSize: number): void;
  setMaxDataSize(maxDataSize: number): void;
}

export declare class ValidationError extends Error {
  constructor(message: string);
  /** Added in 2.0: always `VALIDATION_ERROR`. */
  code: string;
}
