//! Round trips and every way a sealed stream can be damaged, through the public API.

use crate::*;

const RS: usize = RECORD_SIZE;
const SRS: usize = SEALED_RECORD_SIZE;

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn keys() -> Keys {
    Keys::for_share(&Secret::from_bytes([7; 32]), None).unwrap()
}

fn seal_in_chunks(keys: &Keys, plain: &[u8], chunk: usize) -> Vec<u8> {
    let mut sealer = StreamSealer::new(keys.clone());
    let mut out = Vec::new();
    for piece in plain.chunks(chunk) {
        sealer.push(piece, &mut out);
    }
    sealer.finish(&mut out);
    out
}

fn seal_record_by_record(keys: &Keys, plain: &[u8]) -> Vec<u8> {
    let records = layout::record_count(plain.len() as u64) as usize;
    let mut out = Vec::new();
    for index in 0..records {
        let end = ((index + 1) * RS).min(plain.len());
        let last = index + 1 == records;
        out.extend(keys.seal_record(index as u64, last, &plain[index * RS..end]));
    }
    out
}

fn open_from(
    keys: &Keys,
    sealed_len: u64,
    first_record: u64,
    bytes: &[u8],
    chunk: usize,
) -> Result<Vec<u8>, SealError> {
    let mut opener = StreamOpener::new(keys.clone(), sealed_len, first_record)?;
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        opener.push(piece, &mut out)?;
    }
    opener.finish(&mut out)?;
    Ok(out)
}

fn open_all(keys: &Keys, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    open_from(keys, sealed.len() as u64, 0, sealed, 10_000)
}

const LENGTHS: [usize; 6] = [0, 1, RS - 1, RS, RS + 1, 3 * RS - 5];
const CHUNKS: [usize; 4] = [1, 7, 65_535, 70_000];

#[test]
fn stream_sealer_in_any_chunks_matches_record_by_record_sealing_and_opens_again() {
    let keys = keys();
    for len in LENGTHS {
        let plain = plaintext(len);
        let reference = seal_record_by_record(&keys, &plain);
        assert_eq!(reference.len() as u64, layout::sealed_len(len as u64));
        for chunk in CHUNKS {
            if chunk == 1 && len > RS + 1 {
                continue; // byte-at-a-time over 200 KB adds time and no coverage
            }
            assert_eq!(
                seal_in_chunks(&keys, &plain, chunk),
                reference,
                "len {len} chunk {chunk}"
            );
            assert_eq!(
                open_from(&keys, reference.len() as u64, 0, &reference, chunk).unwrap(),
                plain,
                "len {len} chunk {chunk}"
            );
        }
    }
}

#[test]
fn empty_pushes_change_nothing() {
    let keys = keys();
    let plain = plaintext(RS);
    let mut sealer = StreamSealer::new(keys.clone());
    let mut out = Vec::new();
    sealer.push(&[], &mut out);
    sealer.push(&plain, &mut out);
    sealer.push(&[], &mut out);
    assert!(
        out.is_empty(),
        "a full record is held back until more data or finish"
    );
    sealer.finish(&mut out);
    assert_eq!(out, seal_record_by_record(&keys, &plain));
}

#[test]
fn records_open_one_by_one() {
    let keys = keys();
    let plain = plaintext(2 * RS + 3);
    let sealed = seal_record_by_record(&keys, &plain);
    assert_eq!(
        keys.open_record(0, false, &sealed[..SRS]).unwrap(),
        &plain[..RS]
    );
    assert_eq!(
        keys.open_record(1, false, &sealed[SRS..2 * SRS]).unwrap(),
        &plain[RS..2 * RS]
    );
    assert_eq!(
        keys.open_record(2, true, &sealed[2 * SRS..]).unwrap(),
        &plain[2 * RS..]
    );
    assert_eq!(
        keys.open_record(2, false, &sealed[2 * SRS..]),
        Err(SealError::Tampered { record: 2 })
    );
    assert_eq!(
        keys.open_record(0, true, &sealed[..SRS]),
        Err(SealError::Tampered { record: 0 })
    );
    assert_eq!(
        keys.open_record(5, true, &[0; 15]),
        Err(SealError::Tampered { record: 5 })
    );
}

#[test]
fn opening_from_record_k_gives_the_tail() {
    let keys = keys();
    let plain = plaintext(3 * RS + 100);
    let sealed = seal_in_chunks(&keys, &plain, 70_000);
    for k in 0..4u64 {
        let offset = layout::sealed_offset(k) as usize;
        let tail = open_from(&keys, sealed.len() as u64, k, &sealed[offset..], 7_000).unwrap();
        assert_eq!(tail, &plain[k as usize * RS..], "from record {k}");
    }
    assert_eq!(
        StreamOpener::new(keys.clone(), sealed.len() as u64, 4).err(),
        Some(SealError::InvalidLength)
    );
}

#[test]
fn a_flipped_bit_in_any_record_fails_that_record() {
    let keys = keys();
    let sealed = seal_in_chunks(&keys, &plaintext(2 * RS + 10), 65_535);
    for (record, position) in [
        (0, 0),
        (0, SRS - 1),
        (1, SRS + 500),
        (2, 2 * SRS),
        (2, sealed.len() - 1),
    ] {
        let mut damaged = sealed.clone();
        damaged[position] ^= 0x10;
        assert_eq!(
            open_all(&keys, &damaged),
            Err(SealError::Tampered { record }),
            "byte {position}"
        );
    }
}

#[test]
fn dropped_duplicated_and_swapped_records_fail() {
    let keys = keys();
    let sealed = seal_in_chunks(&keys, &plaintext(3 * RS), 70_000);
    let record = |i: usize| &sealed[i * SRS..(i + 1) * SRS];

    let dropped = [record(0), record(2)].concat();
    assert_eq!(
        open_all(&keys, &dropped),
        Err(SealError::Tampered { record: 1 })
    );

    let duplicated = [record(0), record(0), record(1), record(2)].concat();
    assert_eq!(
        open_all(&keys, &duplicated),
        Err(SealError::Tampered { record: 1 })
    );

    let swapped = [record(1), record(0), record(2)].concat();
    assert_eq!(
        open_all(&keys, &swapped),
        Err(SealError::Tampered { record: 0 })
    );

    let last_swapped = [record(0), record(2), record(1)].concat();
    assert_eq!(
        open_all(&keys, &last_swapped),
        Err(SealError::Tampered { record: 1 })
    );
}

#[test]
fn truncated_streams_fail() {
    let keys = keys();
    let sealed = seal_in_chunks(&keys, &plaintext(2 * RS + 10), 70_000);
    let full_len = sealed.len() as u64;

    // Cut at a record boundary, with a length that says so: the new last record has F = 0.
    let at_boundary = &sealed[..2 * SRS];
    assert_eq!(
        open_all(&keys, at_boundary),
        Err(SealError::Tampered { record: 1 })
    );
    // Cut mid-record: the length is impossible, or the last tag fails.
    assert_eq!(
        open_all(&keys, &sealed[..2 * SRS + 5]),
        Err(SealError::InvalidLength)
    );
    assert_eq!(
        open_all(&keys, &sealed[..SRS + 100]),
        Err(SealError::Tampered { record: 1 })
    );
    assert_eq!(
        open_all(&keys, &sealed[..sealed.len() - 1]),
        Err(SealError::Tampered { record: 2 })
    );

    // The length is known but fewer bytes arrive: Truncated, at a boundary or not.
    for cut in [0, SRS, 2 * SRS, 2 * SRS + 5, sealed.len() - 1] {
        assert_eq!(
            open_from(&keys, full_len, 0, &sealed[..cut], 9_999),
            Err(SealError::Truncated),
            "cut at {cut}"
        );
    }
    // More bytes than the length says.
    let longer = [&sealed[..], b"x"].concat();
    assert_eq!(
        open_from(&keys, full_len, 0, &longer, 9_999),
        Err(SealError::InvalidLength)
    );
}

#[test]
fn an_opener_that_failed_stays_failed() {
    let keys = keys();
    let mut sealed = seal_in_chunks(&keys, &plaintext(RS + 1), 70_000);
    sealed[3] ^= 1;
    let mut opener = StreamOpener::new(keys.clone(), sealed.len() as u64, 0).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        opener.push(&sealed[..SRS], &mut out),
        Err(SealError::Tampered { record: 0 })
    );
    assert!(out.is_empty(), "no unauthenticated plaintext");
    assert_eq!(
        opener.push(&sealed[SRS..], &mut out),
        Err(SealError::Tampered { record: 0 })
    );
    assert_eq!(
        opener.finish(&mut out),
        Err(SealError::Tampered { record: 0 })
    );
}

#[test]
fn a_wrong_secret_fails_records_and_metadata() {
    let right = keys();
    let wrong = Keys::for_share(&Secret::from_bytes([8; 32]), None).unwrap();
    let sealed = seal_in_chunks(&right, b"hello", 7);
    assert_eq!(
        open_all(&wrong, &sealed),
        Err(SealError::Tampered { record: 0 })
    );
    let meta = right.seal_metadata(br#"{"name":"a.txt"}"#);
    assert_eq!(right.open_metadata(&meta).unwrap(), br#"{"name":"a.txt"}"#);
    assert_eq!(wrong.open_metadata(&meta), Err(SealError::WrongKey));
    assert_ne!(right.claim_key(), wrong.claim_key());
}

#[test]
fn a_wrong_password_opens_metadata_with_wrong_key() {
    let secret = Secret::from_bytes([1; 32]);
    let params = PasswordParams::generate();
    let with_password = Keys::for_share(&secret, Some(("correct horse", &params))).unwrap();
    let meta = with_password.seal_metadata(b"{}");
    let wrong = Keys::for_share(&secret, Some(("correct hose", &params))).unwrap();
    assert_eq!(wrong.open_metadata(&meta), Err(SealError::WrongKey));
    let without = Keys::for_share(&secret, None).unwrap();
    assert_eq!(without.open_metadata(&meta), Err(SealError::WrongKey));
    assert_ne!(without.claim_key(), with_password.claim_key());
    let again = Keys::for_share(&secret, Some(("correct horse", &params))).unwrap();
    assert_eq!(again.open_metadata(&meta).unwrap(), b"{}");
}

#[test]
fn passwords_are_normalized_to_nfc() {
    let secret = Secret::from_bytes([2; 32]);
    let params = PasswordParams::with_salt([3; 16]);
    let composed = Keys::for_share(&secret, Some(("caf\u{e9}", &params))).unwrap();
    let decomposed = Keys::for_share(&secret, Some(("cafe\u{301}", &params))).unwrap();
    assert_eq!(composed.claim_key(), decomposed.claim_key());
}

#[test]
fn password_params_over_the_limits_are_refused() {
    let good = PasswordParams::generate();
    assert_eq!(good.check(), Ok(()));
    assert_eq!(
        (good.memory_kib, good.iterations, good.parallelism),
        (19_456, 2, 1)
    );
    let refused = [
        PasswordParams {
            memory_kib: 262_145,
            ..good.clone()
        },
        PasswordParams {
            iterations: 11,
            ..good.clone()
        },
        PasswordParams {
            parallelism: 5,
            ..good.clone()
        },
        PasswordParams {
            iterations: 0,
            ..good.clone()
        },
        PasswordParams {
            parallelism: 0,
            ..good.clone()
        },
        PasswordParams {
            memory_kib: 7,
            ..good.clone()
        },
    ];
    for params in refused {
        assert!(
            matches!(params.check(), Err(SealError::Password(_))),
            "{params:?}"
        );
        let keys = Keys::for_share(&Secret::generate(), Some(("pw", &params)));
        assert!(matches!(keys, Err(SealError::Password(_))), "{params:?}");
    }
    let at_limits = PasswordParams {
        memory_kib: 262_144,
        iterations: 10,
        parallelism: 4,
        ..good
    };
    assert_eq!(at_limits.check(), Ok(()));
}

#[test]
fn fragments_round_trip_and_bad_ones_are_refused() {
    let secret = Secret::generate();
    let fragment = secret.to_fragment();
    assert_eq!(fragment.len(), 43);
    assert_eq!(
        Secret::from_fragment(&fragment).unwrap().as_bytes(),
        secret.as_bytes()
    );
    assert_eq!(
        Secret::from_fragment(&format!("#{fragment}"))
            .unwrap()
            .as_bytes(),
        secret.as_bytes()
    );
    for bad in [
        "",
        "#",
        &fragment[..42],
        &format!("{fragment}A"),
        &format!("{}=", &fragment[..42]),
        "##AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(
            Secret::from_fragment(bad).err(),
            Some(SealError::InvalidFragment),
            "{bad:?}"
        );
    }
    assert_ne!(Secret::generate().as_bytes(), secret.as_bytes());
}

#[test]
fn claim_proof_is_challenge_dot_hmac() {
    let keys = keys();
    let proof = keys.claim_proof("AAAAAAAAAAAAAAAAAAAAAA", "Y2hhbGxlbmdl");
    let (challenge, mac) = proof.split_once('.').unwrap();
    assert_eq!(challenge, "Y2hhbGxlbmdl");
    assert_eq!(from_b64u(mac).unwrap().len(), 32);
    assert_ne!(
        proof,
        keys.claim_proof("AAAAAAAAAAAAAAAAAAAAAB", "Y2hhbGxlbmdl")
    );
    assert_ne!(
        proof,
        keys.claim_proof("AAAAAAAAAAAAAAAAAAAAAA", "Y2hhbGxlbmdm")
    );
    // The newline separates id and challenge, so moving a character across it changes the proof.
    assert_ne!(keys.claim_proof("ab", "c"), keys.claim_proof("a", "bc"));
}

#[test]
fn request_uploads_derive_the_same_keys_on_both_sides() {
    let requester = RequestKeyPair::generate();
    let fragment = requester.public_fragment();
    assert_eq!(fragment.len(), 43);
    let upload = seal_to_recipient(&format!("#{fragment}")).unwrap();
    assert_eq!(upload.recipient_public, requester.public_key());
    let opened = requester.keys_for_upload(&upload.ephemeral_public).unwrap();
    assert_eq!(opened.claim_key(), upload.keys.claim_key());
    let sealed = seal_in_chunks(&upload.keys, &plaintext(RS + 2), 65_535);
    assert_eq!(open_all(&opened, &sealed).unwrap(), plaintext(RS + 2));

    let restored = RequestKeyPair::from_bytes(requester.to_bytes());
    assert_eq!(restored.public_key(), requester.public_key());
    let another = seal_to_recipient(&fragment).unwrap();
    assert_ne!(another.ephemeral_public, upload.ephemeral_public);
    assert_ne!(another.keys.claim_key(), upload.keys.claim_key());
    let stranger = RequestKeyPair::generate();
    assert_ne!(
        stranger
            .keys_for_upload(&upload.ephemeral_public)
            .unwrap()
            .claim_key(),
        opened.claim_key()
    );
}

#[test]
fn weak_x25519_public_keys_are_refused() {
    let all_zero = b64u(&[0; 32]);
    assert_eq!(seal_to_recipient(&all_zero).err(), Some(SealError::WeakKey));
    // u = 1 is a point of order 4: a clamped scalar (a multiple of 8) maps it to zero.
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_eq!(
        seal_to_recipient(&b64u(&one)).err(),
        Some(SealError::WeakKey)
    );
    let requester = RequestKeyPair::generate();
    assert_eq!(
        requester.keys_for_upload(&[0; 32]).err(),
        Some(SealError::WeakKey)
    );
    assert_eq!(
        seal_to_recipient("not a key").err(),
        Some(SealError::InvalidFragment)
    );
}

#[test]
fn metadata_that_is_not_sealed_metadata_is_refused() {
    let keys = keys();
    assert_eq!(keys.open_metadata("!!"), Err(SealError::InvalidKey));
    assert_eq!(
        keys.open_metadata(&b64u(&[0; 27])),
        Err(SealError::InvalidKey)
    );
    assert_eq!(
        keys.open_metadata(&b64u(&[0; 28])),
        Err(SealError::WrongKey)
    );
    let sealed = keys.seal_metadata(b"");
    assert_eq!(keys.open_metadata(&sealed).unwrap(), b"");
    assert_ne!(keys.seal_metadata(b""), sealed, "a fresh nonce each time");
}

#[test]
fn keys_are_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Keys>();
    assert_eq!(format!("{:?}", keys()), "Keys(..)");
}
