/**
 * Errors: the one place that turns the native addon's errors into the errors this package
 * throws, plus the small helpers every other module uses to call the addon with that mapping.
 * Native errors already carry the core's `code` and message (the core words them); this file
 * only keeps the 1.0.0 `ValidationError` class in front of them so `instanceof` keeps working.
 */
'use strict';

const native = require('./native');

/** The 1.0.0 validation error. */
class ValidationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ValidationError';
    this.code = 'VALIDATION_ERROR';
    Object.setPrototypeOf(this, ValidationError.prototype);
  }
}

/**
 * A native error as this package throws it: a validation error becomes a `ValidationError`
 * (the 1.0.0 class); every other error is passed on as is, with the core's code and message.
 */
function mapError(err) {
  if (err instanceof Error && err.code === 'VALIDATION_ERROR' && !(err instanceof ValidationError)) {
    return new ValidationError(err.message);
  }
  return err;
}

/** Call a synchronous native function, its error mapped. */
function callNative(fn, ...args) {
  try {
    return fn(...args);
  } catch (err) {
    throw mapError(err);
  }
}

/**
 * Await what `start()` returns (a native promise), its error mapped whether `start` throws or
 * the promise rejects.
 */
async function awaitNative(start) {
  try {
    return await start();
  } catch (err) {
    throw mapError(err);
  }
}

/** The core's not-connected error (the connection is checked in JS, without a native call). */
function notConnected() {
  try {
    native.notConnected();
  } catch (err) {
    return err;
  }
  throw new Error('native notConnected() did not throw');
}

/** A short description of anything a handler threw or rejected with. */
function describeFailure(reason) {
  try {
    if (reason instanceof Error) return String(reason.message || reason.name || 'Error');
    return `handler failed with a non-Error value: ${String(reason)}`;
  } catch {
    // A getter or toString that throws (or a revoked Proxy): say what we can.
    return `handler failed with a value of type ${typeof reason} that cannot be described`;
  }
}

module.exports = { ValidationError, mapError, callNative, awaitNative, notConnected, describeFailure };
