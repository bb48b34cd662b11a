/** Registers every webhook route on the shared HttpServer (one `register` per handlers folder, STYLE 7). */
import type { HttpServer } from '../../src/http.js';
import { type AlertWebhookOptions, registerAlertWebhooks } from './alerts.js';

export type WebhookOptions = AlertWebhookOptions;

/** Adds `POST /webhooks/alerts/:source`. */
export function register(http: HttpServer, opts: WebhookOptions): void {
  registerAlertWebhooks(http, opts);
}
