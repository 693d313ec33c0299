/** Where the process is in its life: starting until its services run, stopping once asked to stop. */
export type Lifecycle = 'starting' | 'running' | 'stopping';

/** One service's answer: whether it does its work now, and what shows why. */
export interface ServiceHealth {
  ok: boolean;
  [detail: string]: unknown;
}

export interface HealthReport {
  status: Lifecycle;
  /** Running, and every service doing its work. */
  ready: boolean;
  services: Record<string, ServiceHealth>;
}

/** What `/healthz` answers: the process's lifecycle, and each running service's own answer, asked at that moment. */
export function createHealth() {
  let status: Lifecycle = 'starting';
  const services = new Map<string, () => ServiceHealth>();
  return {
    set(next: Lifecycle): void {
      status = next;
    },
    watch(name: string, check: () => ServiceHealth): void {
      services.set(name, check);
    },
    report(): HealthReport {
      const answers = Object.fromEntries([...services].map(([name, check]) => [name, check()]));
      return { status, ready: status === 'running' && Object.values(answers).every((answer) => answer.ok), services: answers };
    },
  };
}

export type Health = ReturnType<typeof createHealth>;
