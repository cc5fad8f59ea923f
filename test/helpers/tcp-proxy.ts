// A TCP proxy on 127.0.0.1 in front of the test Postgres server, whose faults a test turns on and off:
// every connection cut with a reset, connections black-holed (bytes dropped both ways while the sockets
// stay open, as on a network cut without a reset), new connections refused with a reset, or answered as a
// server that is starting up (57P03). Only ever forwards to the one target it was started for.
import { createServer, connect, type Server, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'blackhole' | 'refuse' | 'starting';

interface Link {
  client: Socket;
  server: Socket | undefined;
  /** Bytes of this link are dropped from now on, for good: a black-holed connection never recovers. */
  blackholed: boolean;
}

export class FaultyProxy {
  private mode: ProxyMode = 'pass';
  private readonly links = new Set<Link>();

  private readonly server: Server;
  private port = 0;

  private constructor(targetHost: string, targetPort: number) {
    this.server = createServer((client) => this.accept(client, targetHost, targetPort));
  }

  /** Starts a proxy to `targetUrl`'s host and port. */
  static async start(targetUrl: string): Promise<FaultyProxy> {
    const target = new URL(targetUrl);
    const proxy = new FaultyProxy(target.hostname, Number(target.port || 5432));
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    const address = proxy.server.address();
    if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
    proxy.port = address.port;
    return proxy;
  }

  /** `databaseUrl` with this proxy's address in place of the server's. */
  urlFor(databaseUrl: string): string {
    const url = new URL(databaseUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  /** How connections are treated from now on. `blackhole` also takes every open connection. */
  setMode(mode: ProxyMode): void {
    this.mode = mode;
    if (mode === 'blackhole') for (const link of this.links) link.blackholed = true;
  }

  /** Resets every open connection (RST both ways); returns how many there were. */
  cut(): number {
    const count = this.links.size;
    for (const link of [...this.links]) this.drop(link);
    return count;
  }

  /** Connections open now: forwarding, or black-holed. */
  openConnections(): number {
    return this.links.size;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, host: string, port: number): void {
    client.on('error', () => {});
    if (this.mode === 'refuse') return void client.resetAndDestroy();
    if (this.mode === 'starting') return this.answerStarting(client);
    const link: Link = { client, server: undefined, blackholed: this.mode === 'blackhole' };
    this.links.add(link);
    client.on('close', () => this.drop(link));
    if (link.blackholed) {
      client.on('data', () => {});
      return;
    }
    const server = connect(port, host);
    link.server = server;
    server.on('error', () => {});
    server.on('close', () => this.drop(link));
    client.on('data', (chunk) => {
      if (!link.blackholed) server.write(chunk);
    });
    server.on('data', (chunk) => {
      if (!link.blackholed) client.write(chunk);
    });
  }

  private drop(link: Link): void {
    if (!this.links.delete(link)) return;
    link.client.resetAndDestroy();
    link.server?.resetAndDestroy();
  }

  /**
   * Reads the startup message and answers as Postgres does while it starts or recovers: an ErrorResponse
   * (FATAL, SQLSTATE 57P03), then the connection closes.
   */
  private answerStarting(client: Socket): void {
    client.once('data', () => {
      const fields = [
        ['S', 'FATAL'],
        ['V', 'FATAL'],
        ['C', '57P03'],
        ['M', 'the database system is starting up'],
      ];
      const body = Buffer.concat([
        ...fields.map(([type, text]) => Buffer.from(`${type}${text}\0`)),
        Buffer.from([0]),
      ]);
      const header = Buffer.alloc(5);
      header.write('E', 0);
      header.writeInt32BE(body.length + 4, 1);
      client.end(Buffer.concat([header, body]));
    });
  }
}
