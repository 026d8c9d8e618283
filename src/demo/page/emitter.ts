type Listener = (...args: any[]) => void;

/** A small typed event emitter for the page (Node's EventEmitter is not in the browser). */
export class Emitter<Events extends Record<string, unknown[]>> {
  private readonly listeners = new Map<keyof Events, Set<Listener>>();

  on<K extends keyof Events>(name: K, listener: (...args: Events[K]) => void): void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(listener);
  }

  protected emit<K extends keyof Events>(name: K, ...args: Events[K]): void {
    for (const listener of this.listeners.get(name) ?? []) listener(...args);
  }
}
