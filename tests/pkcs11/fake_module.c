/* A PKCS#11 module that misbehaves on purpose, for tests/cli/pkcs11.rs.
 *
 * CERTDECK_FAKE_P11=hang    C_GetSlotList never returns (a hung HSM client).
 * CERTDECK_FAKE_P11=locked  one initialised token whose user PIN is locked
 *                           (CKF_USER_PIN_LOCKED; C_Login answers CKR_PIN_LOCKED and
 *                           appends "C_Login" to $CERTDECK_FAKE_P11_LOG), holding the
 *                           certificate in $CERTDECK_FAKE_P11_CERT (DER, label "fake",
 *                           id 0a) and a public key object with the same id.
 *
 * Built by the test with: cc -shared -fPIC -I/usr/include/p11-kit-1 -o libfake.so fake_module.c
 * (and with -DFAKE_MODE='"hang"' for a copy that hangs whatever the environment says).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

#define SLOT 42
#define SESSION 7

static unsigned char cert[16384];
static unsigned long cert_len;
static int found; /* next object index for C_FindObjects */
static CK_OBJECT_CLASS find_class;
static int find_any;

static const char *mode(void) {
#ifdef FAKE_MODE
  return FAKE_MODE; /* built in (-DFAKE_MODE='"hang"'), for tests that load it in-process */
#else
  const char *m = getenv("CERTDECK_FAKE_P11");
  return m ? m : "";
#endif
}

static void pad(unsigned char *dst, size_t n, const char *s) {
  memset(dst, ' ', n);
  memcpy(dst, s, strlen(s) < n ? strlen(s) : n);
}

static CK_RV f_initialize(void *args) {
  (void)args;
  const char *p = getenv("CERTDECK_FAKE_P11_CERT");
  cert_len = 0;
  if (p) {
    FILE *f = fopen(p, "rb");
    if (f) {
      cert_len = fread(cert, 1, sizeof cert, f);
      fclose(f);
    }
  }
  return CKR_OK;
}

static CK_RV f_finalize(void *r) { (void)r; return CKR_OK; }

static CK_RV f_get_info(CK_INFO *info) {
  memset(info, 0, sizeof *info);
  info->cryptokiVersion.major = 2;
  info->cryptokiVersion.minor = 40;
  pad(info->manufacturerID, sizeof info->manufacturerID, "certdeck tests");
  pad(info->libraryDescription, sizeof info->libraryDescription, "misbehaving module");
  info->libraryVersion.major = 1;
  return CKR_OK;
}

static CK_RV f_get_slot_list(CK_BBOOL present, CK_SLOT_ID *list, CK_ULONG *count) {
  (void)present;
  if (strcmp(mode(), "hang") == 0) {
    for (;;) pause();
  }
  if (!list) { *count = 1; return CKR_OK; }
  if (*count < 1) { *count = 1; return CKR_BUFFER_TOO_SMALL; }
  list[0] = SLOT;
  *count = 1;
  return CKR_OK;
}

static CK_RV f_get_slot_info(CK_SLOT_ID id, CK_SLOT_INFO *info) {
  if (id != SLOT) return CKR_SLOT_ID_INVALID;
  memset(info, 0, sizeof *info);
  pad(info->slotDescription, sizeof info->slotDescription, "fake slot");
  pad(info->manufacturerID, sizeof info->manufacturerID, "certdeck tests");
  info->flags = CKF_TOKEN_PRESENT;
  return CKR_OK;
}

static CK_RV f_get_token_info(CK_SLOT_ID id, CK_TOKEN_INFO *info) {
  if (id != SLOT) return CKR_SLOT_ID_INVALID;
  memset(info, 0, sizeof *info);
  pad(info->label, sizeof info->label, "locked token");
  pad(info->manufacturerID, sizeof info->manufacturerID, "certdeck tests");
  pad(info->model, sizeof info->model, "fake");
  pad(info->serialNumber, sizeof info->serialNumber, "FAKE0001");
  info->flags = CKF_TOKEN_INITIALIZED | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED |
                CKF_USER_PIN_LOCKED;
  info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
  info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
  info->ulMaxPinLen = 64;
  info->ulMinPinLen = 4;
  info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
  return CKR_OK;
}

static CK_RV f_open_session(CK_SLOT_ID id, CK_FLAGS flags, void *app, CK_NOTIFY n,
                            CK_SESSION_HANDLE *s) {
  (void)flags; (void)app; (void)n;
  if (id != SLOT) return CKR_SLOT_ID_INVALID;
  *s = SESSION;
  return CKR_OK;
}

static CK_RV f_close_session(CK_SESSION_HANDLE s) { (void)s; return CKR_OK; }

static CK_RV f_login(CK_SESSION_HANDLE s, CK_USER_TYPE u, CK_UTF8CHAR *pin, CK_ULONG len) {
  (void)s; (void)u; (void)pin; (void)len;
  const char *log = getenv("CERTDECK_FAKE_P11_LOG");
  if (log) {
    FILE *f = fopen(log, "a");
    if (f) { fputs("C_Login\n", f); fclose(f); }
  }
  return CKR_PIN_LOCKED;
}

static CK_RV f_logout(CK_SESSION_HANDLE s) { (void)s; return CKR_USER_NOT_LOGGED_IN; }

/* Objects: handle 1 the certificate, handle 2 its public key. */
static CK_OBJECT_CLASS class_of(CK_OBJECT_HANDLE h) {
  return h == 1 ? CKO_CERTIFICATE : CKO_PUBLIC_KEY;
}

static CK_RV f_find_init(CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG n) {
  (void)s;
  found = 1;
  find_any = 1;
  for (CK_ULONG i = 0; i < n; i++) {
    if (t[i].type == CKA_CLASS && t[i].ulValueLen == sizeof(CK_OBJECT_CLASS)) {
      memcpy(&find_class, t[i].pValue, sizeof find_class);
      find_any = 0;
    }
  }
  return CKR_OK;
}

static CK_RV f_find(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *count) {
  (void)s;
  *count = 0;
  while (found <= 2 && *count < max) {
    CK_OBJECT_HANDLE h = (CK_OBJECT_HANDLE)found++;
    if (h == 1 && cert_len == 0) continue;
    if (find_any || class_of(h) == find_class) out[(*count)++] = h;
  }
  return CKR_OK;
}

static CK_RV f_find_final(CK_SESSION_HANDLE s) { (void)s; return CKR_OK; }

static CK_RV put(CK_ATTRIBUTE *a, const void *v, CK_ULONG len) {
  if (!a->pValue) { a->ulValueLen = len; return CKR_OK; }
  if (a->ulValueLen < len) { a->ulValueLen = CK_UNAVAILABLE_INFORMATION; return CKR_BUFFER_TOO_SMALL; }
  memcpy(a->pValue, v, len);
  a->ulValueLen = len;
  return CKR_OK;
}

static CK_RV f_get_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n) {
  (void)s;
  static const unsigned char id[] = {0x0a};
  CK_OBJECT_CLASS cls = class_of(h);
  CK_CERTIFICATE_TYPE ct = CKC_X_509;
  CK_KEY_TYPE kt = CKK_EC;
  CK_BBOOL no = CK_FALSE;
  CK_RV rv = CKR_OK;
  if (h != 1 && h != 2) return CKR_OBJECT_HANDLE_INVALID;
  for (CK_ULONG i = 0; i < n; i++) {
    CK_RV r = CKR_OK;
    switch (t[i].type) {
    case CKA_CLASS: r = put(&t[i], &cls, sizeof cls); break;
    case CKA_LABEL: r = put(&t[i], "fake", 4); break;
    case CKA_ID: r = put(&t[i], id, sizeof id); break;
    case CKA_PRIVATE: r = put(&t[i], &no, sizeof no); break;
    case CKA_CERTIFICATE_TYPE:
      if (h == 1) { r = put(&t[i], &ct, sizeof ct); break; }
      goto invalid;
    case CKA_VALUE:
      if (h == 1) { r = put(&t[i], cert, cert_len); break; }
      goto invalid;
    case CKA_KEY_TYPE:
      if (h == 2) { r = put(&t[i], &kt, sizeof kt); break; }
      goto invalid;
    default:
    invalid:
      t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
      r = CKR_ATTRIBUTE_TYPE_INVALID;
    }
    if (r != CKR_OK) rv = r;
  }
  return rv;
}

static CK_FUNCTION_LIST list = {
  .version = {2, 40},
  .C_Initialize = f_initialize,
  .C_Finalize = f_finalize,
  .C_GetInfo = f_get_info,
  .C_GetSlotList = f_get_slot_list,
  .C_GetSlotInfo = f_get_slot_info,
  .C_GetTokenInfo = f_get_token_info,
  .C_OpenSession = f_open_session,
  .C_CloseSession = f_close_session,
  .C_Login = f_login,
  .C_Logout = f_logout,
  .C_FindObjectsInit = f_find_init,
  .C_FindObjects = f_find,
  .C_FindObjectsFinal = f_find_final,
  .C_GetAttributeValue = f_get_attr,
};

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out) {
  list.C_GetFunctionList = C_GetFunctionList;
  *out = &list;
  return CKR_OK;
}
