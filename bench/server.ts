/**
 * One scenario's server, in a process of its own: `fork(server.js, [JSON scenario])`. Tells the parent
 * its port, and stops when told to (or when the parent goes away).
 */
import 'reflect-metadata';
import { startScenario, type Scenario } from './scenarios.js';

const scenario = JSON.parse(process.argv[2] ?? '{}') as Scenario;

try {
  const { app, port } = await startScenario(scenario);
  process.on('message', async (message) => {
    if (message === 'stop') {
      await app.close().catch(() => undefined);
      process.exit(0);
    }
    if (message === 'memory') {
      // After a full collection (the soak forks with --expose-gc), so the numbers are what is kept.
      (globalThis as { gc?: () => void }).gc?.();
      const { heapUsed, rss } = process.memoryUsage();
      process.send?.({ memory: { heapUsed, rss } });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ port });
} catch (err) {
  console.error(err);
  process.send?.({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
}
