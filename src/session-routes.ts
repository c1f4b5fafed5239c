import { GUARDS_METADATA, INTERCEPTORS_METADATA } from '@nestjs/common/constants.js';

/**
 * Which handlers take `@Session()`, by the class that declares them and the method's name. Kept by name,
 * not on the function, so that a method decorator that wraps the handler does not hide it.
 */
const sessionMethods = new WeakMap<object, Set<string | symbol>>();
/** The same classes, iterable: looked through once, at startup. */
const sessionClasses = new Set<Function>();

/** @internal Called by `@Session()`. */
export function recordSessionMethod(cls: Function, name: string | symbol): void {
  let names = sessionMethods.get(cls);
  if (!names) sessionMethods.set(cls, (names = new Set()));
  names.add(name);
  sessionClasses.add(cls);
}

/** @internal Whether a handler takes `@Session()` (looked up through the class hierarchy). */
export function takesSession(controller: Function, handler: Function): boolean {
  for (let cls: Function | null = controller; cls && cls !== Function.prototype; cls = Object.getPrototypeOf(cls) as Function | null) {
    const names = sessionMethods.get(cls);
    if (!names) continue;
    for (const name of names) {
      if ((controller.prototype as Record<string | symbol, unknown>)?.[name] === handler) return true;
    }
  }
  return false;
}

/** @internal Handlers taking `@Session()` that lost the interceptor the decorator gave them (a wrapping decorator). */
export function unwiredSessionMethods(interceptor: Function): string[] {
  const out: string[] = [];
  for (const cls of sessionClasses) {
    for (const name of sessionMethods.get(cls) ?? []) {
      const handler = (cls.prototype as Record<string | symbol, unknown>)[name];
      const interceptors = typeof handler === 'function' ? (Reflect.getMetadata(INTERCEPTORS_METADATA, handler) as unknown[] | undefined) : undefined;
      if (!interceptors?.includes(interceptor)) out.push(`${cls.name}.${String(name)}`);
    }
  }
  return out;
}

/** Whether a class asks for `token` in its constructor (by type, or with @Inject). */
export function injects(cls: unknown, token: unknown): boolean {
  if (typeof cls !== 'function') return false;
  const types = (Reflect.getMetadata('design:paramtypes', cls) as unknown[] | undefined) ?? [];
  const declared = (Reflect.getMetadata('self:paramtypes', cls) as { param: unknown }[] | undefined) ?? [];
  return types.includes(token) || declared.some((d) => d.param === token);
}

/** The guards that apply to a method: its class's and its own (classes or instances). */
export function guardsOf(cls: Function, handler: Function): unknown[] {
  return [...((Reflect.getMetadata(GUARDS_METADATA, cls) as unknown[]) ?? []), ...((Reflect.getMetadata(GUARDS_METADATA, handler) as unknown[]) ?? [])];
}

/** The methods of a class and its ancestors, by name. */
export function methodsOf(cls: Function): [string, Function][] {
  const out = new Map<string, Function>();
  for (let proto = cls.prototype as object | null; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as object | null) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name === 'constructor' || out.has(name)) continue;
      const value = Object.getOwnPropertyDescriptor(proto, name)?.value as unknown;
      if (typeof value === 'function') out.set(name, (cls.prototype as Record<string, Function>)[name]!);
    }
  }
  return [...out];
}
