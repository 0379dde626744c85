/* The ICE ufrag table: server ufrag -> media server, fed by registrations through the
 * admin API and by fan-out results; entries expire. */
#include "mux443/admin.h"

void ufrag_admin(const struct admin_req *req, struct admin_resp *resp)
{
    (void)req;
    resp->status = 404;
    fprintf(resp->body, "the ufrag table is not available\n");
}
