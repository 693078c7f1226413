// Demo "API service" (Node): publishes photo.uploaded for a few photos, waits for the Python
// worker's photo.processing.completed events, then prints its stats.
//
// Uses the package exactly as a TS service on @shared-infra/event-bus 1.0.0 would.
'use strict';
const { EventBusClient } = require('../..');

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
// REDIS_CLUSTER_NODES (host:port,... as scripts/redis-topology.sh writes it): a Redis Cluster.
const CLUSTER = process.env.REDIS_CLUSTER_NODES;
const PHOTOS = Number(process.env.DEMO_PHOTOS || 3);
const RUN = process.env.DEMO_RUN || 'demo';
const GAP_MS = Number(process.env.DEMO_PUBLISH_GAP_MS || 0);

async function main() {
  const bus = new EventBusClient({
    serviceName: 'photo-api-service',
    redis: CLUSTER ? { cluster: CLUSTER.split(',').map((a) => `redis://${a}`) } : { url: REDIS_URL },
    logLevel: 'warn',
  });
  await bus.connect();

  const completed = new Set();
  let done;
  const allDone = new Promise((resolve) => (done = resolve));
  await bus.subscribe('photo.processing.completed', async (event) => {
    if (event.data.run !== RUN) return;
    completed.add(event.data.photoId);
    console.log(`[api-service] ${event.data.photoId} ready: ${event.data.thumbnails.length} thumbnails in ${event.data.duration} ms`);
    if (completed.size === PHOTOS) done();
  });

  for (let i = 1; i <= PHOTOS; i++) {
    const photoId = `photo-${i}`;
    if (i > 1 && GAP_MS > 0) await new Promise((r) => setTimeout(r, GAP_MS));
    // persistent: the event also goes to photo.uploaded's stream, which the worker's durable
    // group reads, so a photo published while the worker is down waits for it.
    const result = await bus.publish('photo.uploaded', {
      photoId,
      userId: 'user-456',
      filename: `vacation-${i}.jpg`,
      size: 1024000 + i,
      mimeType: 'image/jpeg',
      uploadedAt: new Date().toISOString(),
      run: RUN,
    }, { persistent: true });
    console.log(`[api-service] published photo.uploaded ${photoId} -> ${result.success ? `delivered to ${result.deliveredTo}` : result.error.message}`);
  }

  const timeout = setTimeout(() => {
    console.error(`[api-service] timed out: ${completed.size}/${PHOTOS} photos completed`);
    process.exitCode = 1;
    done();
  }, Number(process.env.DEMO_TIMEOUT_MS || 20000));
  await allDone;
  clearTimeout(timeout);
  // Tell the other services to print their stats and stop.
  console.log(`[api-service] ${completed.size}/${PHOTOS} photos completed`);
  await bus.publish('demo.shutdown', { run: RUN });
  const s = await bus.getStats();
  console.log(`[api-service] stats: published=${s.eventsPublished} received=${s.eventsReceived} delivered=${s.eventsDelivered} failed=${s.eventsFailed} avgLatency=${s.averageLatency.toFixed(2)}ms`);
  await bus.disconnect();
}

main().catch((err) => {
  console.error('[api-service] failed:', err);
  process.exit(1);
});
