/** The gRPC wire rules: statuses of proxy failures and HTTP answers, grpc-timeout, grpc-message, content types, method paths. */
import { expect, test } from "bun:test";
import { encodeGrpcMessage, formatGrpcTimeout, GrpcStatus, grpcMethodOf, grpcStatusOfError, grpcStatusOfHttp, grpcStatusOfReset, isGrpcContentType, parseGrpcTimeout } from "../../src/util/grpc-status.ts";
import { errors, SwitchyardError } from "../../src/util/errors.ts";

test("proxy failures map to the status a gRPC client can act on", () => {
  expect(grpcStatusOfError(errors.noEndpoint("c"))).toBe(GrpcStatus.UNAVAILABLE);
  expect(grpcStatusOfError(errors.requestTimeout())).toBe(GrpcStatus.DEADLINE_EXCEEDED);
  expect(grpcStatusOfError(errors.idleTimeout())).toBe(GrpcStatus.DEADLINE_EXCEEDED);
  expect(grpcStatusOfError(errors.connectTimeout())).toBe(GrpcStatus.UNAVAILABLE);
  expect(grpcStatusOfError(errors.overloaded("c", "max_requests"))).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
  expect(grpcStatusOfError(errors.circuitOpen("c"))).toBe(GrpcStatus.UNAVAILABLE);
  expect(grpcStatusOfError(errors.noRoute())).toBe(GrpcStatus.UNIMPLEMENTED);
  expect(grpcStatusOfError(errors.draining())).toBe(GrpcStatus.UNAVAILABLE);
  expect(grpcStatusOfError(new SwitchyardError({ code: "rate_limited", status: 429, source: "client", message: "" }))).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
  expect(grpcStatusOfError(new SwitchyardError({ code: "unauthenticated", status: 401, source: "client", message: "" }))).toBe(GrpcStatus.UNAUTHENTICATED);
  expect(grpcStatusOfError(new SwitchyardError({ code: "forbidden", status: 403, source: "client", message: "" }))).toBe(GrpcStatus.PERMISSION_DENIED);
  expect(grpcStatusOfError(new SwitchyardError({ code: "waf_blocked", status: 403, source: "client", message: "" }))).toBe(GrpcStatus.PERMISSION_DENIED);
  expect(grpcStatusOfError(errors.internal())).toBe(GrpcStatus.INTERNAL);
});

test("HTTP answers without grpc-status (http-grpc-status-mapping.md, limits as RESOURCE_EXHAUSTED)", () => {
  expect([400, 401, 403, 404, 429, 502, 503, 504, 500, 418].map(grpcStatusOfHttp)).toEqual([13, 16, 7, 12, 8, 14, 14, 4, 13, 2]);
  expect([7, 8, 11, 1, 2].map(grpcStatusOfReset)).toEqual([14, 1, 8, 13, 13]);
});

test("grpc-timeout: every unit, up to 8 digits; malformed is ignored; formatted in ms", () => {
  expect(["1H", "2M", "3S", "250m", "1500u", "2000000n"].map(parseGrpcTimeout)).toEqual([3_600_000, 120_000, 3000, 250, 1.5, 2]);
  expect(["", "10", "123456789S", "1s", "-1S", "1.5S"].map(parseGrpcTimeout)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
  expect(parseGrpcTimeout(null)).toBeUndefined();
  expect([0.2, 299.1, 1000, 99_999_999, 100_000_000].map(formatGrpcTimeout)).toEqual(["1m", "300m", "1000m", "99999999m", "100000S"]);
});

test("grpc-message is percent-encoded UTF-8 (printable ASCII but % kept)", () => {
  expect(encodeGrpcMessage("plain text: ok")).toBe("plain text: ok");
  expect(encodeGrpcMessage("50% \n é")).toBe("50%25 %0A %C3%A9");
});

test("content types: gRPC (any codec) but not gRPC-Web", () => {
  expect(["application/grpc", "application/grpc+proto", "application/grpc+json", "application/grpc;charset=utf-8"].every(isGrpcContentType)).toBe(true);
  expect(["application/grpc-web", "application/grpc-web+proto", "application/grpcx", "text/plain", null, undefined].some(isGrpcContentType)).toBe(false);
});

test("method paths", () => {
  expect(grpcMethodOf("/pkg.v1.Service/Method")).toEqual({ service: "pkg.v1.Service", method: "Method" });
  expect(["/", "/a", "/a/", "/a/b/c", "a/b"].map(grpcMethodOf)).toEqual([undefined, undefined, undefined, undefined, undefined]);
});
