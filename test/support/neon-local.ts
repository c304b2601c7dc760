import { neonConfig } from "@neondatabase/serverless";
import ws from "ws";

/**
 * Points `@neondatabase/serverless` (process-wide) at the local WebSocket→TCP relay from
 * ws-relay.ts, so its Pool/Client reach a local PostgreSQL exactly as they reach Neon.
 */
export function useNeonRelay(relayPort: number): void {
  // Node 20 has no global WebSocket.
  neonConfig.webSocketConstructor = ws;
  neonConfig.wsProxy = (host, port) => `127.0.0.1:${relayPort}/v1?address=${host}:${port}`;
  // The relay speaks plain ws:// and the local server has no TLS.
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  // The default ("password") pipelines a cleartext password, which a SCRAM role rejects with
  // "client selected an invalid SASL authentication mechanism".
  neonConfig.pipelineConnect = false;
  // Coalescing adds ~1.3 ms per round trip over loopback; it only pays off over real networks.
  neonConfig.coalesceWrites = false;
}
