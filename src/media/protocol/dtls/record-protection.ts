/**
 * AEAD record protection for TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 in DTLS 1.2 (RFC 5288 §3,
 * RFC 5246 §6.2.3.3, RFC 6347 §4.1.2.1): nonce = 4-byte implicit salt from the key block | 8-byte
 * explicit nonce sent in the record; the additional data is epoch | sequence number | type | version |
 * plaintext length.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import type { DtlsRecord } from './record.ts';

const EXPLICIT_NONCE_BYTES = 8;
const TAG_BYTES = 16;

/** One direction's key and implicit nonce salt. */
export interface AeadWriteKeys {
  key: Buffer;
  salt: Buffer;
}

/** Both directions of one epoch, from our side: we seal with `local`, open with `remote`. */
export class AesGcmRecordProtection {
  private readonly sealKey: KeyObject;
  private readonly openKey: KeyObject;
  private readonly sealSalt: Buffer;
  private readonly openSalt: Buffer;

  constructor(local: AeadWriteKeys, remote: AeadWriteKeys) {
    if (local.key.length !== 16 || remote.key.length !== 16) throw new RangeError('AES-128-GCM takes 16-byte keys');
    if (local.salt.length !== 4 || remote.salt.length !== 4) throw new RangeError('AES-GCM in TLS takes a 4-byte implicit nonce');
    this.sealKey = createSecretKey(local.key);
    this.openKey = createSecretKey(remote.key);
    this.sealSalt = Buffer.from(local.salt);
    this.openSalt = Buffer.from(remote.salt);
  }

  /** explicit nonce | ciphertext | tag for `plaintext` sent in this record's slot. */
  seal(record: Omit<DtlsRecord, 'body'>, plaintext: Buffer): Buffer {
    // Epoch and sequence number never repeat under one key, so they make a unique explicit nonce.
    const explicitNonce = sequenceWord(record);
    const cipher = createCipheriv('aes-128-gcm', this.sealKey, Buffer.concat([this.sealSalt, explicitNonce]), { authTagLength: TAG_BYTES });
    cipher.setAAD(additionalData(record, plaintext.length));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([explicitNonce, ciphertext, cipher.getAuthTag()]);
  }

  /** The plaintext of a protected record, or undefined when it is too short or does not authenticate. */
  open(record: DtlsRecord): Buffer | undefined {
    const { body } = record;
    const plaintextLength = body.length - EXPLICIT_NONCE_BYTES - TAG_BYTES;
    if (plaintextLength < 0) return undefined;
    const nonce = Buffer.concat([this.openSalt, body.subarray(0, EXPLICIT_NONCE_BYTES)]);
    const decipher = createDecipheriv('aes-128-gcm', this.openKey, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(additionalData(record, plaintextLength));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    const plaintext = decipher.update(body.subarray(EXPLICIT_NONCE_BYTES, body.length - TAG_BYTES));
    try {
      decipher.final();
    } catch {
      return undefined;
    }
    return plaintext;
  }
}

/** epoch (16 bits) | sequence number (48 bits): DTLS's seq_num in the MAC and AEAD inputs. */
function sequenceWord({ epoch, sequenceNumber }: Omit<DtlsRecord, 'body'>): Buffer {
  const out = Buffer.alloc(8);
  out.writeUInt16BE(epoch, 0);
  out.writeUIntBE(sequenceNumber, 2, 6);
  return out;
}

function additionalData(record: Omit<DtlsRecord, 'body'>, plaintextLength: number): Buffer {
  const out = Buffer.alloc(13);
  sequenceWord(record).copy(out, 0);
  out.writeUInt8(record.contentType, 8);
  out.writeUInt16BE(record.version, 9);
  out.writeUInt16BE(plaintextLength, 11);
  return out;
}
