import { createHash, randomBytes } from "node:crypto";

/** 17 lowercase hex digits: the shape of every "long" EC2 resource id since 2018. */
function hex17(): string {
  return randomBytes(9).toString("hex").slice(0, 17);
}

export const newInstanceId = (): string => `i-${hex17()}`;
export const newReservationId = (): string => `r-${hex17()}`;

/** `i-` followed by 8 or 17 hex digits, as EC2 accepts (short ids still parse). */
export const isInstanceId = (id: string): boolean => /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/.test(id);

/** A stable fake AMI id for a `resolve:ssm:` parameter name, so relaunches agree. */
export function amiForParameter(name: string): string {
  return `ami-${createHash("sha256").update(name).digest("hex").slice(0, 17)}`;
}
