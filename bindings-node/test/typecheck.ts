// Compiled with `tsc --strict --noEmit` (see tsconfig.json here and typecheck.test.js): uses
// the package the way services written against 1.0.0 do. It is never run.
import EventBusDefault, {
  EventBusClient,
  EventBusConfig,
  createEventBusClient,
  Event,
  EventHandler,
  PhotoUploadedData,
  PhotoUploadedEvent,
  PhotoProcessingCompletedData,
  PhotoProcessingFailedData,
  PublishResult,
  Subscription,
  SubscriptionOptions,
  HealthCheckResult,
  EventBusStats,
  IEventBusService,
  Logger,
  LogLevel,
  EventValidator,
  ValidationError,
  SocketEvents,
  matchesPattern,
  DeadLetter,
  DurableOptions,
} from '@shared-infra/event-bus';

declare function processPhoto(photoId: string, userId: string): Promise<void>;
declare const env: Record<string, string | undefined>;
declare const caBytes: Uint8Array;

async function main(): Promise<void> {
  const config: EventBusConfig = {
    serviceName: 'photo-api-service',
    redis: {
      host: env.REDIS_HOST || 'localhost',
      port: parseInt(env.REDIS_PORT || '6379'),
    },
    logLevel: 'info',
  };
  // A private CA as ioredis takes it: PEM text or the bytes fs.readFileSync returns.
  const tlsConfig: EventBusConfig = {
    serviceName: 'photo-api-service',
    redis: { host: 'redis.internal', port: 6380, tls: { ca: [caBytes, '-----BEGIN CERTIFICATE-----'] } },
  };
  void tlsConfig;

  const eventBus = new EventBusClient(config);
  const viaFactory: EventBusClient = createEventBusClient(config);
  const viaDefault: EventBusClient = new EventBusDefault(config);
  const asService: IEventBusService = eventBus;
  void viaFactory; void viaDefault; void asService;
  await eventBus.connect();

  const upload: PhotoUploadedData = {
    photoId: '123',
    userId: 'user-456',
    filename: 'vacation.jpg',
    size: 1024000,
    mimeType: 'image/jpeg',
    uploadedAt: new Date().toISOString(),
  };
  const result: PublishResult = await eventBus.publish('photo.uploaded', upload);
  if (!result.success) console.error(result.error?.code, result.error?.message);
  await eventBus.publish<PhotoUploadedData>('photo.uploaded', upload, { traceId: 't', correlationId: 'c' });

  await eventBus.subscribe('photo.*', async (event) => {
    console.log('Photo event received:', event.type, event.data, event.channel);
  });

  await eventBus.subscribe('photo.uploaded', async (event: Event<PhotoUploadedData>) => {
    const { photoId, userId } = event.data;
    await processPhoto(photoId, userId);
  });

  // Added in 2.0: the handler's context, whose signal is aborted past the timeout.
  await eventBus.subscribe('photo.uploaded', async (event, context) => {
    const signal: AbortSignal | undefined = context?.signal;
    if (!signal?.aborted) console.log(event.id);
  });
  // A 1.0.0 handler variable is still called with the event alone.
  const one: EventHandler = (event) => console.log(event.id);
  void one({} as Event);

  const typed: EventHandler<PhotoProcessingCompletedData> = (event) => {
    console.log(event.data.thumbnails.length, event.data.storageInfo.bucket);
  };
  const options: SubscriptionOptions = { retryOnError: true, maxRetries: 3, timeout: 5000 };
  const sub: Subscription = await eventBus.subscribe('photo.processing.completed', typed, options);

  await eventBus.subscribe<PhotoProcessingFailedData>('photo.processing.failed', async (event) => {
    const { photoId, userId, error } = event.data;
    await eventBus.publishToUser(userId, 'notification.new', {
      type: 'photo_processing_failed',
      message: `Failed to process your photo: ${error.message}`,
      photoId,
    });
  });

  await eventBus.subscribe('photo.*', async (event) => {
    console.log('High-priority photo event:', event.type);
  }, {
    metadata: {
      filter: {
        conditions: [
          { field: 'data.priority', operator: 'equals', value: 'high' },
          { field: 'data.size', operator: 'greaterThan', value: 1000000 },
        ],
        operator: 'AND',
      },
    },
  });

  await eventBus.subscribe('photo.*', () => undefined, {
    filter: { conditions: [{ field: 'data.userId', operator: 'in', value: ['u1'] }] },
    concurrency: 4,
    maxPending: 100,
  });

  // Durable delivery: persistent publishes, a consumer group, dead letters.
  await eventBus.publish('photo.uploaded', upload, { persistent: true, ttl: 86_400_000 });
  const durable: DurableOptions = { group: 'thumbnails', maxDeliveries: 3, startFrom: 'all' };
  await eventBus.subscribe(['photo.uploaded', 'photo.processing.completed'], async (event) => {
    if (event.delivery) console.log(event.delivery.attempt, event.delivery.streamId, event.delivery.group);
  }, { durable, timeout: 60_000 });
  const dead: DeadLetter<PhotoUploadedData>[] = await eventBus.deadLetters('photo.uploaded', { group: 'thumbnails', count: 10 });
  for (const d of dead) console.log(d.event.data.photoId, d.error.message, d.error.code, d.deliveries, d.failedAt, d.originalId);
  const replayed: number = await eventBus.replayDeadLetters('photo.uploaded', { group: 'thumbnails' });
  const purged: number = await eventBus.purgeDeadLetters('photo.uploaded', { group: 'thumbnails' });
  console.log(replayed + purged);

  await eventBus.publishToRoom('photo:123', 'processing.update', { progress: 50 });
  await eventBus.broadcast('system.maintenance', { scheduled: '2024-01-15T02:00:00Z' });
  const batch: PublishResult[] = await eventBus.publishBatch([
    { type: 'photo.uploaded', data: upload },
    { type: 'user.updated', data: { id: 1 }, options: { userId: 'u1' } },
  ]);
  console.log(batch.length);

  const health: HealthCheckResult = await eventBus.healthCheck();
  if (health.status !== 'healthy') console.warn(health.checks.redis?.message);
  const stats: EventBusStats = await eventBus.getStats();
  console.log(stats.eventsPublished, stats.memoryUsage?.rss);
  const p99: number | undefined = stats.latency?.handler.p99;
  const scrape: string = eventBus.metrics();
  console.log(p99, scrape.length);
  for (const d of stats.durable ?? []) console.log(d.group, d.pending, d.lag ?? 'unknown', stats.eventsDeadLettered);

  eventBus.on('gap', (info) => console.warn('missed between', info.from, info.to, info.duration));
  eventBus.on('reconnecting', (info) => console.warn(info.attempt, info.delay));
  eventBus.on('error', (err) => console.error(err.message, err.connection));

  const ok: boolean = await eventBus.unsubscribe(sub.id);
  console.log(ok, eventBus.isConnected(), matchesPattern('photo.*', 'photo.uploaded'));

  const logger = new Logger('debug', 'svc');
  const level: LogLevel = logger.getLevel();
  logger.setLevel(LogLevel.WARN);
  logger.error('x', new Error('y'));
  void level;

  const validator = new EventValidator();
  try {
    validator.validateEventType('bad type');
  } catch (e) {
    if (e instanceof ValidationError) console.log(e.message);
  }
  const ev: PhotoUploadedEvent = {
    id: '1', type: 'photo.uploaded', data: upload,
    metadata: { source: 's', timestamp: new Date().toISOString() },
  };
  validator.validateEvent(ev);
  console.log(SocketEvents.JOIN_ROOM);

  await eventBus.disconnect();
}

void main();
