/**
 * The fake account the SST program is evaluated against (sst-program-child.ts): what the mocked
 * provider answers for each resource's computed outputs, so tests can predict ARNs and names.
 */
export const MOCK_ACCOUNT = "123456789012";
export const MOCK_REGION = "us-east-1";
export const MOCK_SUBNETS = ["subnet-a", "subnet-b"];

/** Outputs the provider computes, for the resource types the program reads them from. */
export function mockOutputs(
  type: string,
  name: string,
  inputs: Record<string, unknown>,
): Record<string, unknown> {
  const physical = typeof inputs.name === "string" ? inputs.name : `${name.toLowerCase()}-physical`;
  const service = type.split(":")[1]?.split("/")[0] ?? "x";
  const common = {
    name: physical,
    arn: `arn:aws:${service}:${MOCK_REGION}:${MOCK_ACCOUNT}:${name}`,
  };
  switch (type) {
    case "aws:s3/bucket:Bucket": {
      const bucket = `${name.toLowerCase()}-bucket`;
      return { ...common, bucket, arn: `arn:aws:s3:::${bucket}` };
    }
    case "aws:iam/role:Role":
      return { ...common, arn: `arn:aws:iam::${MOCK_ACCOUNT}:role/${physical}` };
    case "aws:ec2/securityGroup:SecurityGroup":
      return {
        ...common,
        arn: `arn:aws:ec2:${MOCK_REGION}:${MOCK_ACCOUNT}:security-group/${mockId(type, name)}`,
      };
    case "aws:apigatewayv2/api:Api":
      return {
        ...common,
        apiEndpoint: `https://${name.toLowerCase()}.execute-api.${MOCK_REGION}.amazonaws.com`,
        executionArn: `arn:aws:execute-api:${MOCK_REGION}:${MOCK_ACCOUNT}:${name}`,
      };
    case "random:index/randomBytes:RandomBytes":
      return { ...common, base64: Buffer.alloc(32, 1).toString("base64") };
    default:
      return common;
  }
}

/** The id the mocked provider gives a resource. */
export function mockId(type: string, name: string): string {
  return type === "aws:ec2/securityGroup:SecurityGroup" ? `sg-${name}` : `${name}-id`;
}
