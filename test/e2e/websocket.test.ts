import { Module, type INestApplication } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import { Test } from '@nestjs/testing';
import { MessageBody, SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Session, SessionsModule } from '../../src/index.js';
import { ProbeController, RecordingLogger, SECRET } from '../fixtures/app.js';
import request from 'supertest';

@WebSocketGateway()
class EchoGateway {
  @SubscribeMessage('echo')
  echo(@MessageBody() body: unknown) {
    return { event: 'echo', data: body };
  }

  @SubscribeMessage('session')
  session(@Session() session: Session) {
    return { event: 'session', data: session.id };
  }
}

describe('WebSocket gateways with the module installed', () => {
  let app: INestApplication;
  let url: string;
  const logger = new RecordingLogger();

  beforeAll(async () => {
    @Module({ imports: [SessionsModule.forRoot(SECRET)], controllers: [ProbeController], providers: [EchoGateway] })
    class AppModule {}
    const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = ref.createNestApplication({ logger });
    app.useWebSocketAdapter(new WsAdapter(app));
    await app.listen(0, '127.0.0.1');
    url = `ws://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(() => app.close());

  /** The gateway's answer to one message; a connection that closes without one fails (the test timeout bounds a hang). */
  function exchange(message: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.on('open', () => ws.send(JSON.stringify(message)));
      ws.on('message', (data) => {
        ws.close();
        resolve(JSON.parse(String(data)));
      });
      ws.on('close', () => reject(new Error('the connection closed without an answer')));
      ws.on('error', reject);
    });
  }

  it('a message handler still works, untouched', async () => {
    expect(await exchange({ event: 'echo', data: { hello: 'ws' } })).toEqual({ event: 'echo', data: { hello: 'ws' } });
  });

  it('@Session() in a gateway fails with a clear error, not undefined', async () => {
    // The handler fails: the gateway answers with its generic exception event, never with a session.
    expect(await exchange({ event: 'session', data: null })).toMatchObject({
      event: 'exception',
      data: { status: 'error', message: 'Internal server error' },
    });
    expect(logger.messages('error').join('\n')).toMatch(/Sessions work in HTTP handlers .* EchoGateway.session runs in a "ws" context/);
  });

  it('HTTP sessions in the same app still work', async () => {
    const agent = request.agent(app.getHttpServer());
    await agent.post('/write').send({ value: 'http' }).expect(201);
    expect((await agent.get('/read')).body.value).toBe('http');
  });
});
