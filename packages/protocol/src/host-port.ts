/** `host:port` for logs, events and messages, IPv6 in brackets (`[::1]:7420`), as an address is written. */
export function hostPort({ host, port }: { host: string; port: number }): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
