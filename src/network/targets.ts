// Which addresses an outbound call that a tenant chose (a webhook receiver, a model's upstream server) may
// reach. Internal addresses (loopback, private, link-local with the cloud metadata service, …) are refused
// unless the operator opened them; names are checked when the socket connects, against every address they
// resolve to, so a name cannot pass a check and then rebind to 127.0.0.1.
import { lookup as lookupHost } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * What may not be reached, named as a refusal names it; the first kind that matches wins. BlockList
 * matches IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) against the IPv4 subnets.
 */
const INTERNAL_SUBNETS: ReadonlyArray<[kind: string, network: string, prefix: number]> = [
  ['loopback', '127.0.0.0', 8],
  ['loopback', '::1', 128],
  ['unspecified', '0.0.0.0', 8],
  ['unspecified', '::', 128],
  ['private', '10.0.0.0', 8],
  ['private', '172.16.0.0', 12],
  ['private', '192.168.0.0', 16],
  ['private', 'fc00::', 7],
  // Includes 169.254.169.254, the cloud metadata service.
  ['link-local', '169.254.0.0', 16],
  ['link-local', 'fe80::', 10],
  ['carrier-grade NAT', '100.64.0.0', 10],
  ['multicast', '224.0.0.0', 4],
  ['multicast', 'ff00::', 8],
  ['broadcast', '255.255.255.255', 32],
  ['reserved', '240.0.0.0', 4],
  // The deprecated IPv4-compatible addresses (::127.0.0.1), which BlockList does not map to IPv4.
  ['reserved', '::', 96],
];

const familyOf = (address: string) => (isIP(address) === 6 ? 'ipv6' : 'ipv4');

const INTERNAL_BLOCK_LISTS = new Map<string, BlockList>();
for (const [kind, network, prefix] of INTERNAL_SUBNETS) {
  const list = INTERNAL_BLOCK_LISTS.get(kind) ?? new BlockList();
  list.addSubnet(network, prefix, familyOf(network));
  INTERNAL_BLOCK_LISTS.set(kind, list);
}

/** The kind of internal address an IP address is (`loopback`, `private`…), or undefined for a public one. */
export function internalAddressKind(address: string): string | undefined {
  for (const [kind, list] of INTERNAL_BLOCK_LISTS) if (list.check(address, familyOf(address))) return kind;
  return undefined;
}

/**
 * `10.0.0.0/8`, `::1/128` or a bare address as a subnet; throws an Error saying what is wrong otherwise.
 * For configuration: the internal networks an operator opens.
 */
export function parseSubnet(text: string): { network: string; prefix: number } {
  const [network = '', prefixText, extra] = text.trim().split('/');
  const family = isIP(network);
  const bits = family === 6 ? 128 : 32;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (family === 0 || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > bits) {
    throw new Error(`"${text}" is not an IP address or a subnet such as 10.0.0.0/8`);
  }
  return { network, prefix };
}

/** The host of a URL as an address when it is an IP literal (brackets of IPv6 removed), else undefined. */
export function ipLiteralOf(target: URL): string | undefined {
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  return isIP(host) ? host : undefined;
}

/** Thrown by the lookup so that the call's error is the refusal itself. */
export class RefusedTargetError extends Error {}

export class TargetPolicy {
  private readonly opened = new BlockList();
  /**
   * dns.lookup that fails if ANY address of the name is refused; undefined when nothing is (no check).
   * An IP literal never goes through a lookup: check it with refusedHostKind.
   */
  readonly lookup: LookupFunction | undefined;

  /**
   * `opened`: the internal networks that may be reached anyway (`all` for every one: only for targets on
   * the operator's own network, and tests). `what` names the calls in refusals ("webhooks").
   */
  constructor(
    private readonly what: string,
    private readonly openedNetworks: readonly string[] | 'all',
  ) {
    this.lookup = openedNetworks === 'all' ? undefined : this.lookupAllowed;
    if (openedNetworks === 'all') return;
    for (const subnet of openedNetworks) {
      const { network, prefix } = parseSubnet(subnet);
      this.opened.addSubnet(network, prefix, familyOf(network));
    }
  }

  /** Why `address` may not be reached (its kind, e.g. `loopback`), or undefined when it may. */
  refusedKind(address: string): string | undefined {
    if (this.openedNetworks === 'all') return undefined;
    const kind = internalAddressKind(address);
    return kind && !this.opened.check(address, familyOf(address)) ? kind : undefined;
  }

  /**
   * What can be known of a URL before connecting: the kind of refused address its host is when it is an
   * IP literal or a `localhost` name (RFC 6761: always loopback); undefined otherwise.
   */
  refusedHostKind(target: URL): string | undefined {
    const literal = ipLiteralOf(target);
    if (literal !== undefined) return this.refusedKind(literal);
    return /(^|\.)localhost\.?$/i.test(target.hostname) ? this.refusedKind('127.0.0.1') : undefined;
  }

  refusal(host: string, address: string, kind: string): string {
    const target = host === address ? address : `${host} resolves to ${address}`;
    return `refused: ${target} (${kind}), which ${this.what} may not reach`;
  }

  private readonly lookupAllowed: LookupFunction = (hostname, options, callback) => {
    lookupHost(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '');
      for (const { address } of addresses) {
        const kind = this.refusedKind(address);
        if (kind) return callback(new RefusedTargetError(this.refusal(hostname, address, kind)), '');
      }
      if (options.all) return callback(null, addresses);
      const [first] = addresses;
      if (!first) return callback(new Error(`${hostname} has no addresses`), '');
      callback(null, first.address, first.family);
    });
  };
}
