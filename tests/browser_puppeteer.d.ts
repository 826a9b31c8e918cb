/**
 * The part of puppeteer-core the browser tests use. Its own types pull in
 * @types/node, which would replace Deno's node types for the whole type
 * check (and break `node:assert`'s signatures in tests/assert.ts); these
 * few declarations keep the browser tests out of everyone else's types.
 * Page functions are passed as strings: the tests have no DOM types.
 */
export interface LaunchOptions {
  executablePath: string;
  headless: boolean;
  args: string[];
}

export interface Viewport {
  width: number;
  height: number;
  deviceScaleFactor?: number;
  isMobile?: boolean;
  hasTouch?: boolean;
}

export interface ElementHandle {
  click(): Promise<void>;
  type(text: string): Promise<void>;
}

export interface HTTPRequest {
  url(): string;
  method(): string;
  continue(): Promise<void>;
  respond(response: { status: number; contentType?: string; body?: string }): Promise<void>;
  headers(): Record<string, string>;
}

export interface HTTPResponse {
  url(): string;
  status(): number;
  request(): HTTPRequest;
}

export interface Page {
  setRequestInterception(on: boolean): Promise<void>;
  goto(url: string): Promise<unknown>;
  /** Load the page again: its script starts afresh, its session storage (the sign-in) stays. */
  reload(): Promise<unknown>;
  setViewport(viewport: Viewport): Promise<void>;
  /** Run the page in this IANA zone, as a viewer there would. */
  emulateTimezone(zone: string): Promise<void>;
  on(event: "request", handler: (request: HTTPRequest) => void): void;
  on(event: "response", handler: (response: HTTPResponse) => void): void;
  on(event: "pageerror", handler: (error: Error) => void): void;
  on(event: "console", handler: (message: { type(): string; text(): string }) => void): void;
  screenshot(options: { path: string; fullPage?: boolean }): Promise<unknown>;
  waitForSelector(selector: string, options?: { timeout?: number }): Promise<ElementHandle | null>;
  waitForFunction(expression: string, options?: { timeout?: number }): Promise<unknown>;
  evaluate<T>(expression: string): Promise<T>;
  /** Run `source` in each document this page loads, before its own scripts. */
  evaluateOnNewDocument(source: string): Promise<unknown>;
  click(selector: string): Promise<void>;
  type(selector: string, text: string): Promise<void>;
  select(selector: string, ...values: string[]): Promise<string[]>;
  close(): Promise<void>;
}

export interface Browser {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

declare const puppeteer: { launch(options: LaunchOptions): Promise<Browser> };
export default puppeteer;
