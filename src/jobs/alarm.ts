// A wake-up that is not lost: ring() during the work before sleep() makes that sleep return at once.
// Workers sleep on it between claims, long polls between reads of a job.
export class Alarm {
  private rung = false;
  private wake: () => void = () => {};

  ring(): void {
    this.rung = true;
    this.wake();
  }

  /** Returns at the first ring since the last sleep, or after `ms`. */
  async sleep(ms: number): Promise<void> {
    if (!this.rung) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = () => {};
    }
    this.rung = false;
  }
}
