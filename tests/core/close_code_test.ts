// The close-code registry and the application range.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  APPLICATION_CLOSE_CODES,
  CloseCode,
  closePayload,
  isApplicationCloseCode,
  isValidWireCloseCode,
} from "../../core/close_code.ts";
import { UsageError } from "../../core/errors.ts";

describe("close codes", () => {
  it("names every registered code, and nothing else", () => {
    const registered = [1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, 3000, 3003, 3008];
    const values = Object.values(CloseCode).sort((a, b) => a - b);
    assert.deepEqual(values, registered, "exactly the registered codes");
    assert.equal(new Set(Object.keys(CloseCode)).size, registered.length, "one name per code");
  });

  it("uses the right names", () => {
    assert.deepEqual(
      {
        Normal: CloseCode.Normal,
        GoingAway: CloseCode.GoingAway,
        ProtocolError: CloseCode.ProtocolError,
        UnsupportedData: CloseCode.UnsupportedData,
        NoStatus: CloseCode.NoStatus,
        Abnormal: CloseCode.Abnormal,
        InvalidPayload: CloseCode.InvalidPayload,
        PolicyViolation: CloseCode.PolicyViolation,
        MessageTooBig: CloseCode.MessageTooBig,
        MandatoryExtension: CloseCode.MandatoryExtension,
        InternalError: CloseCode.InternalError,
        ServiceRestart: CloseCode.ServiceRestart,
        TryAgainLater: CloseCode.TryAgainLater,
        BadGateway: CloseCode.BadGateway,
        TlsHandshake: CloseCode.TlsHandshake,
        Unauthorized: CloseCode.Unauthorized,
        Forbidden: CloseCode.Forbidden,
        Timeout: CloseCode.Timeout,
      },
      {
        Normal: 1000,
        GoingAway: 1001,
        ProtocolError: 1002,
        UnsupportedData: 1003,
        NoStatus: 1005,
        Abnormal: 1006,
        InvalidPayload: 1007,
        PolicyViolation: 1008,
        MessageTooBig: 1009,
        MandatoryExtension: 1010,
        InternalError: 1011,
        ServiceRestart: 1012,
        TryAgainLater: 1013,
        BadGateway: 1014,
        TlsHandshake: 1015,
        Unauthorized: 3000,
        Forbidden: 3003,
        Timeout: 3008,
      },
    );
  });

  it("tells the application range 4000–4999", () => {
    assert.deepEqual({ ...APPLICATION_CLOSE_CODES }, { min: 4000, max: 4999 });
    assert.ok(Object.isFrozen(APPLICATION_CLOSE_CODES));
    for (const code of [4000, 4001, 4500, 4999]) assert.equal(isApplicationCloseCode(code), true, String(code));
    for (const code of [3999, 5000, 1000, 0, -4000, 4000.5, Number.NaN]) assert.equal(isApplicationCloseCode(code), false, String(code));
  });

  it("tells which codes may go on the wire", () => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 3008, 4000, 4999]) {
      assert.equal(isValidWireCloseCode(code), true, String(code));
    }
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 1000.5]) {
      assert.equal(isValidWireCloseCode(code), false, String(code));
    }
  });

  it("builds close payloads and refuses codes that may not be sent", () => {
    assert.deepEqual(Array.from(closePayload(1000, "bye")), [0x03, 0xe8, 0x62, 0x79, 0x65]);
    assert.deepEqual(Array.from(closePayload(4999)), [0x13, 0x87]);
    assert.equal(closePayload(undefined).length, 0);
    for (const code of [1005, 1006, 1015, 5000]) {
      assert.throws(() => closePayload(code), (e) => e instanceof UsageError && e.code === "ERR_INVALID_CLOSE_CODE", String(code));
    }
  });
});
