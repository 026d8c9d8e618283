/**
 * Why a main-thread handle closed: its own `close()`, its parent's (a room closes its peers and
 * pipe ends), or the worker thread dying with what the handle stood for. Whatever the cause, a
 * closed handle sends nothing more to its worker.
 */
export type CloseCause = 'closed' | 'parentClosed' | 'workerExited';
