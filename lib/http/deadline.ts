import type { MiddlewareHandler } from "hono";
import { REQUEST_DEADLINE_SECONDS } from "../config.js";
import { deadlineIn } from "../deadline.js";
import type { AppEnv } from "./context.js";

/** Left for the runtime to send the answer once a request's own work has stopped. */
const LAMBDA_MARGIN_MS = 1_000;

interface LambdaContextLike {
  getRemainingTimeInMillis?: () => number;
}

/**
 * Gives each request its deadline (`deps.deadline`): in Lambda, the invocation's remaining time
 * less a margin (`hono/aws-lambda` passes the context as `c.env.lambdaContext`), and never more
 * than `REQUEST_DEADLINE_SECONDS` (API Gateway's 30 s); locally and in tests, the same budget, or
 * `budgetMs` when given. Every AWS call, fetch and wait of the request takes at most what
 * remains, so the API's own answer (a 202 with what is pending, or a 5xx code) always leaves
 * before API Gateway would answer 504 for it.
 */
export const requestDeadline = (budgetMs?: number): MiddlewareHandler<AppEnv> =>
  async function requestDeadline(c, next) {
    const lambda = (c.env as { lambdaContext?: LambdaContextLike } | undefined)?.lambdaContext;
    const remaining = lambda?.getRemainingTimeInMillis?.();
    const budget = Math.min(
      budgetMs ?? REQUEST_DEADLINE_SECONDS * 1000,
      remaining === undefined ? Number.POSITIVE_INFINITY : remaining - LAMBDA_MARGIN_MS,
    );
    c.set("deps", { ...c.get("deps"), deadline: deadlineIn(budget) });
    await next();
  };
