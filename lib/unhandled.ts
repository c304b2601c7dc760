/**
 * The `default` of an exhaustive `switch`: `value` is `never` there, so a new case that the
 * switch forgets breaks the build; reached at run time anyway (a value from outside the types),
 * it is a bug and throws.
 */
export function unhandled(what: string, value: never): never {
  throw new Error(`unhandled ${what} ${JSON.stringify(value)}`);
}
