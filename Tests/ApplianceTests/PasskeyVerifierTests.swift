import COpenSSL
import Testing
@testable import Appliance

/// Fixed vectors: a registration and sign-ins by an ES256 key, and bare Ed25519 and RS256
/// signatures, all made once by the Python software authenticator the integration tests use.
enum PasskeyVectors {
    static func bytes(_ hex: String) -> [UInt8] { Hex.decode(hex)! }
    static let expected = PasskeyExpectation(rpID: "localhost", origin: "http://localhost:8080")
    static let message = Array("claworc passkey vector".utf8)
    // Generated once with Tests/harness/soft_authenticator.py (the `cryptography` package).
    static let regClientData = bytes("7b2274797065223a22776562617574686e2e637265617465222c226368616c6c656e6765223a2241514542415145424151454241514542415145424151454241514542415145424151454241514542415145222c226f726967696e223a22687474703a2f2f6c6f63616c686f73743a38303830222c2263726f73734f726967696e223a66616c73657d")
    static let regAttestation = bytes("a363666d74646e6f6e656761747453746d74a068617574684461746158a449960de5880e8c687434170f6476605b8fe4aeb9a28632c7995cf3ba831d976345000000000000000000000000000000000000000000207b2741c3798d47e8132770c9b7d9af39cf4f7fffa804c54e14f03d641403497ba50102032620012158204125540ca9aa83cf662d266bfc5ad0daaf0ad2b583c5c948f378611e9514902a22582051336420506667b19fbb748d847a8afec8fb62745c3ad5808efffae68346d792")
    static let credentialID = bytes("7b2741c3798d47e8132770c9b7d9af39cf4f7fffa804c54e14f03d641403497b")
    static let coseKey = bytes("a50102032620012158204125540ca9aa83cf662d266bfc5ad0daaf0ad2b583c5c948f378611e9514902a22582051336420506667b19fbb748d847a8afec8fb62745c3ad5808efffae68346d792")
    static let getClientData = bytes("7b2274797065223a22776562617574686e2e676574222c226368616c6c656e6765223a2241674943416749434167494341674943416749434167494341674943416749434167494341674943416749222c226f726967696e223a22687474703a2f2f6c6f63616c686f73743a38303830222c2263726f73734f726967696e223a66616c73657d")
    static let getAuthData = bytes("49960de5880e8c687434170f6476605b8fe4aeb9a28632c7995cf3ba831d97630500000007")
    static let getSignature = bytes("3045022100df35b9a2913840eb8aa903e0853f67b5f39e28479eeef5625b1cabb6b472da8f02206e1df4532b75fad1e71034a4a10860d36f60f332f744be25566f4b347adcb7d5")
    static let noUPAuthData = bytes("49960de5880e8c687434170f6476605b8fe4aeb9a28632c7995cf3ba831d97630400000008")
    static let noUPSignature = bytes("3045022100a1dd02bee40c4dd1d3db13c498299eb4d6cb6d537a1ee36ae4301bf0f9819576022079b990c30912f75de7daa3fb6fe8fa4bcfab1ebf90d101fded63a2a578e20335")
    static let edCose = bytes("a4010103272006215820e2f5b88d9f771a3b8bb476ef59d02dd5cc917aa9c2fc37e5503486f330ed7b6d")
    static let edSignature = bytes("b3ca1194984c79a95ab9b3a4c2e8435922c13eef5c3b800975a3c2a7ef3341445293311839dfd5bd85475e74deba2c32338ec75db96638f3c4dc81e37ca9d705")
    static let rsaCose = bytes("a401030339010020590100bc9f9d288414cdf719782a4cf15ded3f3d424483eb236f36878c839fba1264265b26522685302784043304c558244c3214141a2eb4925a1d9d07d312f71fc0017543c810685d03ba05d5a2b8659e7dfed0206c4ff11cfe51315012aa30a430088f4afd1f2836c8ffb4e12f36bc93a95a9d0f7cc2bd3450cffbb9f38a464d5a5d4c903725144f7f3df1fd53b9eb87998bc86f5c60cb9904d4b77e3f340a6109fea6a22552eb6f1b9519a2c0cb3d0673648ee62d296f1c268f0d8bd74ca8b25f119c07244c6b5dd4d769a95540aa83263cae82198260866e51754e79abaaa753751a249c9148697533a45ce963a7103ccd5343763650be939d80d029f1ee90b4312143010001")
    static let rsaSignature = bytes("7ffba0f748b96a89e2046d21bf5d9a957c8bc45e0cb9b3104d4f2af1f3370514bca81ccbc64a8c4cb988d4478365995cefbf9e67a1b8ada0b0affb20ecb89da85765a5af3ab8d2c3d4d057ce44b793d44f5703b42c1573b7ad806c4066217cb306ad48c02f1115a1b3fcd2bd669bc000ca447d37dca8d8d485a40bf8e29cb08b50e6317e1a870a10c7174f34a73f74cf50ae69b15b60c8d7592afa1bd3f1aca8382d87fc18126d599ac6e3bc321846d4cacd1717d23faf2758c30527b0a5e4d8b2a7fa37f6bf976ec5ead292ca240e7c3b1a156d99a21166e923aa54b610d27e14862db547a1a8e4160daa873f368f2da94c05688a547c103673b67c98e472e8")
}

@Suite struct PasskeyVerifierTests {
    typealias V = PasskeyVectors
    init() { _ = cossl_load(nil, 0) }

    func register(clientData: [UInt8] = V.regClientData, expected: PasskeyExpectation = V.expected) throws -> PasskeyVerifier.Registered {
        try PasskeyVerifier.verifyRegistration(clientData: try ClientData.parse(clientData), clientDataJSON: clientData,
                                               attestationObject: V.regAttestation, credentialID: V.credentialID, expected: expected)
    }

    func assert(authData: [UInt8] = V.getAuthData, signature: [UInt8] = V.getSignature, stored: UInt32 = 0,
                expected: PasskeyExpectation = V.expected) throws -> UInt32 {
        try PasskeyVerifier.verifyAssertion(clientData: try ClientData.parse(V.getClientData), clientDataJSON: V.getClientData,
                                            authenticatorData: authData, signature: signature, publicKey: V.coseKey,
                                            storedCount: stored, expected: expected)
    }

    @Test func registrationYieldsTheCredentialAndItsKey() throws {
        let registered = try register()
        #expect(registered.credentialID == V.credentialID)
        #expect(registered.publicKey == V.coseKey)
        #expect(registered.algorithm == .es256)
        #expect(registered.signCount == 0)
        #expect(try ClientData.parse(V.regClientData).challenge == Base64URL.encode([UInt8](repeating: 1, count: 32)))
    }

    @Test func registrationRefusesAnotherOriginOrRPID() {
        #expect(throws: PasskeyError.originMismatch(expected: "http://localhost:9999", got: "http://localhost:8080")) {
            try register(expected: PasskeyExpectation(rpID: "localhost", origin: "http://localhost:9999"))
        }
        #expect(throws: PasskeyError.rpIDMismatch) {
            try register(expected: PasskeyExpectation(rpID: "example.com", origin: "http://localhost:8080"))
        }
    }

    @Test func registrationRefusesASignInAnswerAndAnotherCredentialID() {
        #expect(throws: PasskeyError.wrongCeremony) { try register(clientData: V.getClientData) }
        #expect(throws: PasskeyError.malformed("the credential id does not match the authenticator data")) {
            try PasskeyVerifier.verifyRegistration(clientData: try ClientData.parse(V.regClientData), clientDataJSON: V.regClientData,
                                                   attestationObject: V.regAttestation, credentialID: [1, 2, 3], expected: V.expected)
        }
    }

    @Test func assertionChecksSignatureAndCounter() throws {
        #expect(try assert(stored: 0) == 7)
        #expect(try assert(stored: 6) == 7)
        #expect(throws: PasskeyError.signCountNotIncreased) { try assert(stored: 7) }
        #expect(throws: PasskeyError.signCountNotIncreased) { try assert(stored: 9) }
        var tampered = V.getSignature
        tampered[tampered.count - 3] ^= 1
        #expect(throws: PasskeyError.badSignature) { try assert(signature: tampered) }
        var otherData = V.getAuthData
        otherData[36] ^= 1   // a counter the signature does not cover
        #expect(throws: PasskeyError.badSignature) { try assert(authData: otherData) }
    }

    @Test func assertionRefusesMissingUserPresenceAndAnotherRP() {
        #expect(throws: PasskeyError.userNotPresent) { try assert(authData: V.noUPAuthData, signature: V.noUPSignature) }
        #expect(throws: PasskeyError.rpIDMismatch) {
            try assert(expected: PasskeyExpectation(rpID: "claworc.local", origin: "http://localhost:8080"))
        }
    }

    @Test func eddsaAndRS256SignaturesVerifyThroughOpenSSL() throws {
        for (cose, signature, algorithm) in [(V.edCose, V.edSignature, COSEAlgorithm.edDSA), (V.rsaCose, V.rsaSignature, .rs256)] {
            let key = try COSEPublicKey(coseBytes: cose)
            #expect(key.algorithm == algorithm)
            #expect(try key.verify(signature: signature, over: V.message))
            #expect(try !key.verify(signature: signature, over: V.message + [0]))
        }
    }

    @Test func aPointOffTheCurveIsNoKey() throws {
        var key = try COSEPublicKey(coseBytes: V.coseKey)
        key.b[31] ^= 1
        #expect(throws: PasskeyError.unsupportedAlgorithm) { try key.verify(signature: V.getSignature, over: V.message) }
    }

    @Test func cborRefusesWhatAuthenticatorsNeverSend() throws {
        #expect(throws: CBORError.self) { try CBOR.decode([0x5f, 0x41, 0x00, 0xff]) }           // indefinite bytes
        #expect(throws: CBORError.self) { try CBOR.decode([0x5a, 0xff, 0xff, 0xff, 0xff]) }     // length beyond the data
        #expect(throws: CBORError.self) { try CBOR.decode([UInt8](repeating: 0x81, count: 20) + [0x00]) }  // too deep
        #expect(throws: CBORError.self) { try CBOR.decode([0xa2, 0x01, 0x01, 0x01, 0x02]) }     // duplicate key
        #expect(throws: CBORError.self) { try CBOR.decode([0x01, 0x02]) }                       // trailing byte
        #expect(try CBOR.decode([0xa2, 0x01, 0x02, 0x20, 0x43, 1, 2, 3])[int: -1] == .bytes([1, 2, 3]))
    }

    @Test func base64URLRoundTrips() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37 + 250) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.decode("ab+c") == nil)
        #expect(Base64URL.decode("abcde") == nil)
    }

    @Test func hostsThatAreNamesAndHostsThatAreNot() throws {
        let passkeys = Passkeys(store: try SQLiteStore(path: ":memory:"), throttle: LoginThrottle(), secure: false)
        #expect(try passkeys.expectation(host: "localhost:8080") == PasskeyExpectation(rpID: "localhost", origin: "http://localhost:8080"))
        #expect(try passkeys.expectation(host: "Claworc.LAN:80") == PasskeyExpectation(rpID: "claworc.lan", origin: "http://claworc.lan"))
        for host in ["127.0.0.1:8080", "[::1]:8080", "10.0.0.1", "", "a b"] {
            #expect(throws: PasskeyError.needsHostName) { try passkeys.expectation(host: host) }
        }
        let pinned = Passkeys(store: try SQLiteStore(path: ":memory:"), throttle: LoginThrottle(), secure: true, rpID: "claworc.lan")
        #expect(try pinned.expectation(host: "box.claworc.lan:443") == PasskeyExpectation(rpID: "claworc.lan", origin: "https://box.claworc.lan"))
        #expect(throws: PasskeyError.rpIDMismatch) { try pinned.expectation(host: "other.lan") }
    }
}
