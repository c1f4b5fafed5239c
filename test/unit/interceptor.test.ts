import type { CallHandler, ExecutionContext } from '@nestjs/common';
import { lastValueFrom, of } from 'rxjs';
import { describe, expect, it, vi } from 'vitest';
import { SessionsInterceptor, type SessionsService } from '../../src/index.js';

describe('SessionsInterceptor outside HTTP', () => {
  it.each(['rpc', 'ws'])('passes a "%s" context straight through', async (type) => {
    const sessions = { attach: vi.fn(), load: vi.fn() } as unknown as SessionsService;
    const interceptor = new SessionsInterceptor(sessions);
    const handled = of('result');
    const next: CallHandler = { handle: vi.fn(() => handled) };
    const context = {
      getType: () => type,
      switchToHttp: vi.fn(),
      getArgByIndex: vi.fn(),
      getArgs: vi.fn(),
      getHandler: vi.fn(),
      getClass: vi.fn(),
    } as unknown as ExecutionContext;
    const out = interceptor.intercept(context, next);
    expect(out).toBe(handled);
    expect(await lastValueFrom(out)).toBe('result');
    expect(context.switchToHttp).not.toHaveBeenCalled();
    expect(context.getArgByIndex).not.toHaveBeenCalled();
    expect(sessions.attach).not.toHaveBeenCalled();
  });
});
