import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { Module, type INestApplication } from '@nestjs/common';
import { Args, GraphQLModule, Int, Mutation, Query, Resolver } from '@nestjs/graphql';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemorySessionStore, Session, SessionsModule, SkipCsrf, type SessionsModuleOptions } from '../../src/index.js';
import { RecordingLogger, SECRET, setCookies } from '../fixtures/app.js';

@Resolver()
class CounterResolver {
  @Query(() => Int)
  count(@Session() session: Session<{ count: number }>): number {
    return session.get('count', 0);
  }

  @Mutation(() => Int)
  increment(@Session() session: Session<{ count: number }>, @Args('by', { type: () => Int, defaultValue: 1 }) by: number): number {
    const count = session.get('count', 0) + by;
    session.set('count', count);
    return count;
  }

  @Query(() => String)
  csrfToken(@Session() session: Session): string {
    return session.csrfToken();
  }

  @Query(() => String)
  hello(): string {
    return 'world';
  }

  /** The count, nullable, so that an error in it leaves the other fields' data. */
  @Query(() => Int, { nullable: true })
  countOrNull(@Session() session: Session<{ count: number }>): number {
    return session.get('count', 0);
  }

  /** A field other sites may call (it reads nothing that matters). */
  @Query(() => Boolean)
  @SkipCsrf()
  ping(@Session() session: Session): boolean {
    return session.isNew;
  }

  /** A new session ID (a login would do this), in the middle of a request. */
  @Mutation(() => Boolean)
  relogin(@Session() session: Session): boolean {
    session.regenerate();
    return true;
  }

  /** Changes the session, then fails with an error that is not the client's (nullable, so the rest of the data survives). */
  @Mutation(() => Int, { nullable: true })
  boom(@Session() session: Session<{ count: number; boom: boolean }>): number {
    session.set('boom', true);
    throw new Error('boom');
  }
}

async function graphqlApp(
  context: ApolloDriverConfig['context'],
  logger = new RecordingLogger(),
  options: Partial<SessionsModuleOptions> = {},
): Promise<INestApplication> {
  @Module({
    imports: [
      SessionsModule.forRoot({ secret: SECRET, store: new InMemorySessionStore(), ...options }),
      GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, autoSchemaFile: true, context }),
    ],
    providers: [CounterResolver],
  })
  class AppModule {}
  const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app = ref.createNestApplication({ logger });
  await app.init();
  return app;
}

describe('GraphQL resolvers (Apollo on Express)', () => {
  let app: INestApplication;
  beforeAll(async () => {
    app = await graphqlApp(({ req, res }: { req: unknown; res: unknown }) => ({ req, res }));
  });
  afterAll(() => app.close());

  it("a cross-site request: each resolver that takes the session is refused, whatever another field's @SkipCsrf()", async () => {
    const agent = request.agent(app.getHttpServer());
    await agent.post('/graphql').send({ query: 'mutation { increment }' }).expect(200);
    const res = await agent
      .post('/graphql')
      .set({ 'sec-fetch-site': 'cross-site', origin: 'http://evil.example', 'apollo-require-preflight': 'true' })
      .send({ query: 'mutation { increment(by: 10) }' });
    expect(JSON.stringify(res.body.errors)).toMatch(/Cross-site request refused/);
    const both = await agent
      .post('/graphql')
      .set({ 'sec-fetch-site': 'cross-site', origin: 'http://evil.example', 'apollo-require-preflight': 'true' })
      .send({ query: '{ ping countOrNull }' });
    expect(both.body.data?.ping).toBe(false); // the skipped field loaded the session...
    expect(both.body.data?.countOrNull).toBeNull(); // ...and the count is still refused
    expect(JSON.stringify(both.body.errors)).toMatch(/Cross-site request refused/);
    expect((await agent.post('/graphql').send({ query: '{ count }' })).body.data).toEqual({ count: 1 });
  });

  it('a mutation that increments a counter keeps it across requests', async () => {
    const agent = request.agent(app.getHttpServer());
    const first = await agent.post('/graphql').send({ query: 'mutation { increment }' }).expect(200);
    expect(first.body).toEqual({ data: { increment: 1 } });
    expect(setCookies(first)).toHaveLength(1);
    const second = await agent.post('/graphql').send({ query: 'mutation { increment(by: 2) }' }).expect(200);
    expect(second.body).toEqual({ data: { increment: 3 } });
    const read = await agent.post('/graphql').send({ query: '{ count }' }).expect(200);
    expect(read.body).toEqual({ data: { count: 3 } });
    expect(setCookies(read)).toEqual([]);
  });

  it.each(['mutation { boom increment }', 'mutation { increment boom }'])(
    'a failing resolver drops only its own changes: %s',
    async (query) => {
      const agent = request.agent(app.getHttpServer());
      const res = await agent.post('/graphql').send({ query }).expect(200);
      expect(res.body.data.increment).toBe(1);
      expect(res.body.errors[0].message).toBe('boom');
      const read = await agent.post('/graphql').send({ query: '{ count }' }).expect(200);
      expect(read.body).toEqual({ data: { count: 1 } });
    },
  );

  it('a query that does not take the session sets nothing', async () => {
    const res = await request(app.getHttpServer()).post('/graphql').send({ query: '{ hello }' }).expect(200);
    expect(res.body).toEqual({ data: { hello: 'world' } });
    expect(setCookies(res)).toEqual([]);
  });
});

describe('GraphQL with requireToken', () => {
  it('a resolver that takes the session needs the token over POST (queries too); a GET query issues it', async () => {
    const app = await graphqlApp(({ req, res }: { req: unknown; res: unknown }) => ({ req, res }), new RecordingLogger(), {
      csrf: { requireToken: true },
    });
    try {
      const agent = request.agent(app.getHttpServer());
      // GraphQL queries go by POST too: a resolver that takes the session needs the token there as well.
      const issued = await agent.post('/graphql').send({ query: '{ csrfToken }' }).expect(200);
      expect(JSON.stringify(issued.body.errors)).toMatch(/no anti-forgery token in the x-csrf-token header/);
      const page = await agent.get('/graphql').query({ query: '{ csrfToken }' }).set('apollo-require-preflight', 'true').expect(200);
      const token = page.body.data.csrfToken as string;
      const refused = await agent.post('/graphql').send({ query: 'mutation { increment }' }).expect(200);
      expect(refused.body.data).toBeNull();
      expect(JSON.stringify(refused.body.errors)).toMatch(/no anti-forgery token/);
      expect((await agent.post('/graphql').set('x-csrf-token', token).send({ query: 'mutation { increment }' }).expect(200)).body).toEqual({
        data: { increment: 1 },
      });
      const wrong = await agent
        .post('/graphql')
        .set('x-csrf-token', token.slice(0, -2))
        .send({ query: 'mutation { increment }' })
        .expect(200);
      expect(JSON.stringify(wrong.body.errors)).toMatch(/does not match this session/);
      expect((await agent.post('/graphql').set('x-csrf-token', token).send({ query: '{ count hello }' })).body).toEqual({
        data: { count: 1, hello: 'world' },
      });
      // Without a token: the @SkipCsrf() field answers, the one that is not skipped is refused.
      const mixed = await agent.post('/graphql').send({ query: '{ ping countOrNull }' }).expect(200);
      expect(mixed.body.data).toEqual({ ping: false, countOrNull: null });
      expect(JSON.stringify(mixed.body.errors)).toMatch(/no anti-forgery token/);
      // A resolver that gives the session a new ID does not fail the next resolver's check: the token
      // is judged once, against the session as it came.
      const both = await agent.post('/graphql').set('x-csrf-token', token).send({ query: 'mutation { relogin increment }' }).expect(200);
      expect(both.body).toEqual({ data: { relogin: true, increment: 2 } });
      await agent
        .post('/graphql')
        .set('x-csrf-token', token)
        .send({ query: 'mutation { increment }' })
        .expect(200)
        .then((res) => expect(JSON.stringify(res.body.errors)).toMatch(/does not match this session/));
    } finally {
      await app.close();
    }
  });
});

describe('GraphQL without req and res in its context', () => {
  it('@Session() says how to pass them', async () => {
    const app = await graphqlApp(() => ({}));
    try {
      const res = await request(app.getHttpServer()).post('/graphql').send({ query: 'mutation { increment }' }).expect(200);
      expect(res.body.errors[0].message).toMatch(
        /Sessions work in HTTP handlers and in GraphQL resolvers whose context has req and res; CounterResolver.increment runs in a "graphql" context; pass the request and response into the GraphQL context/,
      );
    } finally {
      await app.close();
    }
  });
});
