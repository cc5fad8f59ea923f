// Text as modelgate stores it: Postgres text and jsonb hold no NUL (U+0000), and a lone UTF-16 surrogate is
// no Unicode character (UTF-8 cannot encode it, jsonb refuses its escape). What comes from outside is
// refused with the reason (textFault); messages that quote it are made storable (storableText).

/** A high surrogate without its low half, or a low one without its high half. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE = new RegExp(`\0|${LONE_SURROGATE.source}`, 'g');

/** Why `text` cannot be stored as text, or undefined when it can. */
export function textFault(text: string): string | undefined {
  if (text.includes('\0')) return 'contains the NUL character (U+0000)';
  if (LONE_SURROGATE.test(text)) return 'contains a lone UTF-16 surrogate (not Unicode text)';
  return undefined;
}

/** `text` with every NUL and lone surrogate replaced by U+FFFD, for a message that quotes what it was given. */
export function storableText(text: string): string {
  return text.replace(UNSTORABLE, '\ufffd');
}

/**
 * In the output of JSON.stringify, a NUL is always the escape `\u0000` and a lone surrogate always an
 * escape of it (pairs are written as they are); an even run of backslashes before one is text, not an escape.
 */
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|[dD][89a-fA-F])/;

/** Whether JSON text written by JSON.stringify can be stored as jsonb. */
export function isStorableJson(json: string): boolean {
  return !UNSTORABLE_ESCAPE.test(json);
}
