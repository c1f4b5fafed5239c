import { Controller, Get, INestApplication, Module } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { InMemorySessionStore, SessionsModule } from 'nest-sessions';
import { SessionStoreHealthIndicator } from 'nest-sessions/health';
import request from 'supertest';

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly sessionStore: SessionStoreHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.sessionStore.isHealthy('sessions')]);
  }
}

@Module({
  imports: [TerminusModule, SessionsModule.forRoot({ secret: process.env.SESSION_SECRET!, store: new InMemorySessionStore() })],
  controllers: [HealthController],
  providers: [SessionStoreHealthIndicator],
})
class HealthModule {}

describe('the health entry point, nest-sessions/health (e2e)', () => {
  let app: INestApplication;

  beforeAll(async () => {
    const moduleFixture = await Test.createTestingModule({ imports: [HealthModule] }).compile();
    app = moduleFixture.createNestApplication();
    await app.init();
  });

  afterAll(async () => {
    await app.close();
  });

  it('reports the session store up', async () => {
    const res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body.details.sessions).toMatchObject({ status: 'up', store: 'InMemorySessionStore' });
  });
});
