/** The product's version: what `GET /health` answers and `wcp --version` prints. */
export const VERSION = "0.1.0";
