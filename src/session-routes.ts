import { GUARDS_METADATA } from '@nestjs/common/constants.js';

/**
 * Which handlers take `@Session()`, by the class that declares them and the method's name, with the
 * parameter's position. Kept by name, not on the function, so that a method decorator that wraps the
 * handler does not hide it.
 */
const sessionMethods = new WeakMap<object, Map<string | symbol, number>>();
/** The same classes, iterable: looked through at startup. */
const sessionClasses = new Set<Function>();
/** The functions `wrapSessionMethods` put in place. */
const wrappers = new WeakSet<Function>();

/** @internal Called by `@Session()`. */
export function recordSessionMethod(cls: Function, name: string | symbol, index: number): void {
  let names = sessionMethods.get(cls);
  if (!names) sessionMethods.set(cls, (names = new Map()));
  if (!names.has(name)) names.set(name, index);
  sessionClasses.add(cls);
}

/** @internal Whether a handler takes `@Session()` (looked up through the class hierarchy). */
export function takesSession(controller: Function, handler: Function): boolean {
  if (isSessionMethod(handler)) return true;
  for (let cls: Function | null = controller; cls && cls !== Function.prototype; cls = Object.getPrototypeOf(cls) as Function | null) {
    const names = sessionMethods.get(cls);
    if (!names) continue;
    for (const name of names.keys()) {
      if ((controller.prototype as Record<string | symbol, unknown>)?.[name] === handler) return true;
    }
  }
  return false;
}

/** @internal Whether `handler` is a method that `wrapSessionMethods` wrapped (it saves its own session). */
export function isSessionMethod(handler: Function): boolean {
  return wrappers.has(handler);
}

/**
 * @internal Replaces every method that takes `@Session()` with `wrap(method, parameterIndex)`, once per
 * process (a wrapped method is left alone). Runs at startup, before Nest reads the routes, so that the
 * router, guards and interceptors all see the wrapper. The wrapper carries the method's own metadata
 * (route, guards, interceptors, custom keys), its name and its length.
 */
export function wrapSessionMethods(wrap: (method: Function, index: number) => Function): void {
  for (const cls of sessionClasses) {
    for (const [name, index] of sessionMethods.get(cls) ?? []) {
      const proto = cls.prototype as object;
      const descriptor = Object.getOwnPropertyDescriptor(proto, name);
      const method = descriptor?.value as unknown;
      if (typeof method !== 'function' || wrappers.has(method)) continue;
      const wrapper = wrap(method, index);
      for (const key of Reflect.getOwnMetadataKeys(method)) {
        Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, method), wrapper);
      }
      Object.defineProperty(wrapper, 'name', { value: method.name, configurable: true });
      Object.defineProperty(wrapper, 'length', { value: method.length, configurable: true });
      wrappers.add(wrapper);
      Object.defineProperty(proto, name, { ...descriptor, value: wrapper });
    }
  }
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
