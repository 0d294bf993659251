// Admission control at login (ClientAuthentication_hook).
#pragma once

namespace connguard::pg {

void install_login_hook();

}  // namespace connguard::pg
